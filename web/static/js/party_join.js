// An invite link (/p/{code}): join the party (a name for guests, its password when it has one),
// keep the member token for this tab and open the watch page inside the party.
import { api, joinedWith, remember } from "./partyapi.js";

const section = document.getElementById("party-join");
const code = section.dataset.code;
const signedIn = section.dataset.signedIn === "true";
const form = document.getElementById("join-form");
const error = document.getElementById("join-error");
const passwordField = document.getElementById("password-field");

function enter(partyId, videoId) {
  location.replace(`/watch/${encodeURIComponent(videoId)}?party=${encodeURIComponent(partyId)}`);
}

async function join() {
  const data = Object.fromEntries(new FormData(form));
  const body = { code, password: data.password || null };
  if (!signedIn) body.display_name = (data.display_name || "").trim();
  const joined = await api("POST", "/api/parties/join", body);
  remember(joined.party, joined.member, joined.member_token);
  enter(joined.party.id, joined.party.video_id);
}

async function attempt() {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  error.textContent = "";
  try {
    await join();
  } catch (failure) {
    if (failure.code === "BAD_PASSWORD") {
      const first = passwordField.hidden;
      passwordField.hidden = false;
      document.getElementById("party-password").focus();
      error.textContent = first ? "This party needs its password." : failure.message;
    } else if (failure.status === 404) {
      error.textContent = "This invite link does not lead to a party (it may have been mistyped).";
    } else {
      error.textContent = failure.message;
    }
    button.disabled = false;
  }
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!form.reportValidity()) return;
  attempt();
});

const known = joinedWith(code);
if (known) enter(...known); // this tab joined already (a reload): back in with its token
else if (signedIn) attempt(); // an account needs no name: try at once (a password may be asked)
