// On every page: importing api.js drops the token earlier versions kept in localStorage.
// The session itself is the HttpOnly cookie; signing out is the /logout form (no script).
import "./api.js";
