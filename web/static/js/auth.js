// Sign in / sign up: GraphQL mutations; login sets the HttpOnly cookie (the token is not kept).
import { gql } from "./api.js";

const LOGIN = `mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) { user { id } }
}`;
const SIGNUP = `mutation Signup($email: String!, $password: String!, $username: String!) {
  signup(email: $email, password: $password, username: $username) { id }
}`;

const form = document.getElementById("auth-form");
const error = document.getElementById("auth-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!form.reportValidity()) return;
  const data = Object.fromEntries(new FormData(form));
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  error.textContent = "";
  try {
    if (form.dataset.mode === "signup") {
      await gql(SIGNUP, { email: data.email, password: data.password, username: data.username });
    }
    await gql(LOGIN, { email: data.email, password: data.password });
    location.assign(form.dataset.next || "/");
  } catch (failure) {
    error.textContent = failure.message || "Something went wrong; try again.";
    button.disabled = false;
  }
});
