// On every page: keep the stored token in step with the cookie the server saw, and sign out.
import { session } from "./api.js";

const viewer = document.body.dataset.viewer;
const stored = session.user;
if (stored && stored.username !== viewer) session.clear();

for (const form of document.querySelectorAll("form[data-logout]")) {
  form.addEventListener("submit", () => session.clear());
}
