// Upload with a progress bar (XMLHttpRequest reports upload progress; fetch does not),
// then transcoding progress live over the websocket.
import { GraphQLSocket, graphqlSocketUrl } from "./gqlws.js";
import { showProcessing } from "./processing.js";

const form = document.getElementById("upload-form");
const error = document.getElementById("upload-error");
const button = document.getElementById("upload-button");
const status = document.getElementById("upload-status");
const uploadBar = document.getElementById("upload-progress");
const uploadText = document.getElementById("upload-text");
const transcodeBar = document.getElementById("transcode-progress");
const transcodeText = document.getElementById("transcode-text");
const watchLink = document.getElementById("watch-link");

function megabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function send(body) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/videos/upload");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      const percent = Math.floor((event.loaded / event.total) * 100);
      uploadBar.value = percent;
      uploadText.textContent = `${percent}% (${megabytes(event.loaded)} of ${megabytes(event.total)})`;
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.response);
      else reject(new Error(xhr.response?.error?.message || `upload refused (${xhr.status})`));
    });
    xhr.addEventListener("error", () => reject(new Error("the upload was interrupted")));
    xhr.send(body);
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!form.reportValidity()) return;
  error.textContent = "";
  button.disabled = true;
  status.hidden = false;
  uploadBar.value = 0;
  transcodeBar.removeAttribute("value");
  transcodeText.textContent = "Waiting for the upload…";
  let video;
  try {
    video = await send(new FormData(form));
  } catch (failure) {
    error.textContent = failure.message;
    button.disabled = false;
    return;
  }
  uploadBar.value = 100;
  uploadText.textContent = "Uploaded.";
  transcodeText.textContent = "Transcoding…";
  // The handshake carries the session cookie: no token in connection_init.
  const socket = new GraphQLSocket({ url: graphqlSocketUrl(), connectionParams: () => ({}) });
  showProcessing(socket, video.id, {
    bar: transcodeBar,
    text: transcodeText,
    onDone() {
      socket.close();
      watchLink.querySelector("a").href = `/watch/${encodeURIComponent(video.id)}`;
      watchLink.hidden = false;
      button.disabled = false;
      form.reset();
    },
    onFailed() {
      socket.close();
      button.disabled = false;
    },
  });
});
