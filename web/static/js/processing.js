// Transcoding progress of one video over the `videoProcessing` subscription.

const QUERY = `subscription Processing($id: ID!) {
  videoProcessing(videoId: $id) { id status progress failureReason }
}`;

/**
 * Follow a video until it leaves PROCESSING; returns a function that stops following.
 * @param {import("./gqlws.js").GraphQLSocket} socket
 * @param {string} videoId
 * @param {{progress(percent: number): void, done(): void, failed(reason: string): void}} on
 */
export function followProcessing(socket, videoId, on) {
  let finished = false;
  return socket.subscribe(QUERY, { id: videoId }, {
    next(payload) {
      if (payload.errors?.length) {
        finished = true;
        on.failed(payload.errors[0].message);
        return;
      }
      const video = payload.data.videoProcessing;
      on.progress(video.progress ?? 0);
      if (video.status === "TRANSCODED") {
        finished = true;
        on.done();
      } else if (video.status === "FAILED") {
        finished = true;
        on.failed(video.failureReason || "transcoding failed");
      }
    },
    error(errors) {
      finished = true;
      on.failed(errors?.[0]?.message || "progress is unavailable");
    },
    complete() {
      if (!finished) on.failed("progress stopped before the video was ready");
    },
  });
}

/** Bind a <progress> and its text to a video's transcoding. */
export function showProcessing(socket, videoId, { bar, text, onDone = () => {}, onFailed = () => {} }) {
  return followProcessing(socket, videoId, {
    progress(percent) {
      bar.value = percent;
      text.textContent = `Transcoding… ${percent}%`;
    },
    done() {
      bar.value = 100;
      text.textContent = "Transcoded: ready to watch.";
      text.dataset.status = "TRANSCODED";
      onDone();
    },
    failed(reason) {
      text.textContent = `Transcoding failed: ${reason}`;
      text.dataset.status = "FAILED";
      onFailed(reason);
    },
  });
}
