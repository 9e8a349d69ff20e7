// The console's only way to the server: the public GraphQL API, over HTTP (queries, mutations) and
// WebSocket (subscriptions, graphql-transport-ws). No private endpoints.
import { createClient } from "graphql-ws";

const TOKEN_KEY = "promptstudio.console.token";

export class ApiError extends Error {
  constructor(message, code, errors) {
    super(message);
    this.code = code || null;
    this.errors = errors || [];
  }
}

/** A mutation payload's userErrors as one message ("field: message; ..."), or null. */
export function userErrorMessage(payload) {
  const errors = (payload && payload.userErrors) || [];
  if (!errors.length) return null;
  return errors
    .map((e) => {
      const field = (e.field || []).filter((p) => p !== "input").join(".");
      return field ? `${field}: ${e.message}` : e.message;
    })
    .join("; ");
}

export class Api {
  constructor({ graphqlURL, wsURL }) {
    this.url = graphqlURL;
    this.wsUrl = wsURL;
    this.token = readToken();
    this.client = null;
    this.listeners = new Set(); // (state) => void, state: {token, live}
    this.live = false;
    this.connections = 0;
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit() {
    for (const listener of this.listeners) listener({ token: this.token, live: this.live });
  }

  setToken(token, remember) {
    this.token = token || null;
    try {
      localStorage.removeItem(TOKEN_KEY);
      sessionStorage.removeItem(TOKEN_KEY);
      if (token) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
    } catch {
      /* storage switched off: the token lives in memory only */
    }
    if (this.client) {
      this.client.dispose();
      this.client = null;
    }
    this.live = false;
    this.emit();
  }

  authHeaders() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  /** Run a query or mutation; resolves to `data`, rejects with ApiError (code from extensions.code). */
  async request(query, variables = {}) {
    let response;
    try {
      response = await fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", ...this.authHeaders() },
        body: JSON.stringify({ query, variables }),
      });
    } catch (err) {
      throw new ApiError(`Cannot reach the server (${err.message}).`, "NETWORK");
    }
    let body;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`The server answered ${response.status} ${response.statusText}.`, "HTTP");
    }
    if (body.errors && body.errors.length) {
      const code = body.errors[0].extensions && body.errors[0].extensions.code;
      if (code === "UNAUTHENTICATED" && this.token) this.setToken(null);
      throw new ApiError(body.errors.map((e) => e.message).join("; "), code, body.errors);
    }
    return body.data;
  }

  wsClient() {
    if (!this.client) {
      this.client = createClient({
        url: this.wsUrl,
        lazy: true,
        keepAlive: 20000,
        retryAttempts: 1000,
        shouldRetry: () => true,
        connectionParams: () => this.authHeaders(),
        on: {
          connected: () => {
            this.connections += 1;
            this.live = true;
            this.emit();
          },
          closed: () => {
            this.live = false;
            this.emit();
          },
        },
      });
    }
    return this.client;
  }

  /**
   * Subscribe; `onData(data)` for each result, `onError(ApiError)` when the server refuses or ends it
   * with errors, `onDone()` when it completes. Returns the function that unsubscribes.
   */
  subscribe(query, variables, { onData, onError, onDone }) {
    return this.wsClient().subscribe(
      { query, variables },
      {
        next: (result) => {
          if (result.errors && result.errors.length) {
            const code = result.errors[0].extensions && result.errors[0].extensions.code;
            onError && onError(new ApiError(result.errors.map((e) => e.message).join("; "), code, result.errors));
          } else {
            onData(result.data);
          }
        },
        error: (err) => {
          if (Array.isArray(err)) {
            const code = err[0] && err[0].extensions && err[0].extensions.code;
            onError && onError(new ApiError(err.map((e) => e.message).join("; "), code, err));
          } else {
            onError && onError(new ApiError(`Live updates stopped: ${err && (err.reason || err.message || err.type)}`, "WS"));
          }
        },
        complete: () => onDone && onDone(),
      },
    );
  }
}

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || sessionStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}
