// Watch parties over REST (/api/parties) and the party's member token.
//
// A member token (from joinParty) is kept in sessionStorage for this tab only and sent as the
// bearer token on party calls and on /ws; without one (the host, who created the party signed in)
// the session cookie speaks for the caller.

const REQUEST_TIMEOUT_MS = 15000;
const TOKEN_KEY = "cowatch.party.";
const CODE_KEY = "cowatch.party-code.";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** {token, memberId} this tab holds for a party, or null. */
export function membership(partyId) {
  try {
    return JSON.parse(sessionStorage.getItem(TOKEN_KEY + partyId) || "null");
  } catch {
    return null;
  }
}

export function remember(party, member, token) {
  sessionStorage.setItem(TOKEN_KEY + party.id, JSON.stringify({ token, memberId: member.id }));
  sessionStorage.setItem(CODE_KEY + party.code, JSON.stringify([party.id, party.video_id]));
}

/** [party id, video id] this tab already joined with the invite `code`, or null. */
export function joinedWith(code) {
  try {
    return JSON.parse(sessionStorage.getItem(CODE_KEY + code) || "null");
  } catch {
    return null;
  }
}

export function forget(partyId) {
  sessionStorage.removeItem(TOKEN_KEY + partyId);
  for (const key of Object.keys(sessionStorage)) {
    if (key.startsWith(CODE_KEY) && joinedWith(key.slice(CODE_KEY.length))?.[0] === partyId) {
      sessionStorage.removeItem(key);
    }
  }
}

/** One REST call; resolves to the JSON answer (null for 204), throws ApiError otherwise. */
export async function api(method, path, body = undefined, token = null) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  if (response.status === 204) return null;
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // an answer that is not JSON (a proxy's error page): the status says enough
  }
  if (!response.ok) {
    const error = answer?.error ?? {};
    throw new ApiError(
      response.status,
      error.code || "ERROR",
      error.message || `server answered ${response.status}`,
    );
  }
  return answer;
}

/** A party's playback as the sync engine reads it (camelCase, ordered by `version`). */
export function playbackState(playback) {
  // A start after the barrier (or a premiere's) keeps the playhead's version: order it after the
  // WAITING / scheduled state of the same version.
  return {
    videoId: null,
    timestamp: Number(playback.timestamp) || 0,
    playing: Boolean(playback.playing),
    rate: Number(playback.rate) || 1,
    serverTime: Number(playback.server_time) || 0,
    version: (Number(playback.version) || 0) * 2 + (playback.playing ? 1 : 0),
    userId: playback.user_id ?? null,
    memberId: playback.member_id ?? null,
  };
}

export function socketUrl(token) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${scheme}//${location.host}/ws${query}`;
}

/** A GraphQL query as a party's member: its member token, or the session cookie without one. */
export async function memberGraphQL(query, variables, token = null) {
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
    credentials: "same-origin",
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const body = await response.json().catch(() => ({}));
  if (body.errors?.length) {
    const error = new Error(body.errors[0].message);
    error.code = body.errors[0].extensions?.code ?? "ERROR";
    throw error;
  }
  if (!body.data) throw new Error(`server answered ${response.status}`);
  return body.data;
}
