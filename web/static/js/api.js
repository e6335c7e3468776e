// The signed-in session (token kept for the websocket's connection_init) and GraphQL over HTTP.

const TOKEN_KEY = "cowatch.token";
const USER_KEY = "cowatch.user";
const REQUEST_TIMEOUT_MS = 15000;

export const session = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  get user() {
    try {
      return JSON.parse(localStorage.getItem(USER_KEY) || "null");
    } catch {
      return null;
    }
  },
  save(token, user) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify({ id: user.id, username: user.username }));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
  },
  /** Headers for our own API; without a stored token the HttpOnly cookie still authenticates. */
  headers() {
    const token = this.token;
    return token ? { Authorization: `Bearer ${token}` } : {};
  },
};

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
    headers: { "Content-Type": "application/json", Accept: "application/json", ...session.headers() },
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
