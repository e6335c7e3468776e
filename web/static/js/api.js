// GraphQL over HTTP for the pages. The session is the HttpOnly cookie the server sets at login:
// no script ever holds the token (nothing in localStorage), same-origin requests and the
// websocket handshake carry the cookie by themselves.

const REQUEST_TIMEOUT_MS = 15000;

// Earlier versions kept the token in localStorage, where any injected script could read it.
for (const key of ["cowatch.token", "cowatch.user"]) localStorage.removeItem(key);

export class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || "ERROR";
  }
}

/** One query or mutation over HTTP; resolves to `data`, throws GraphQLError on errors. */
export async function gql(query, variables = {}) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ query, variables }),
    credentials: "same-origin",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS), // a hung request must not stall the player
  });
  let body;
  try {
    body = await response.json();
  } catch {
    throw new GraphQLError([{ message: `server answered ${response.status}` }]);
  }
  if (body.errors?.length) throw new GraphQLError(body.errors);
  return body.data;
}

export function formatTime(seconds) {
  if (!Number.isFinite(seconds)) return "";
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}
