// Prompt Studio's console: a live monitor over the public GraphQL API.
//
// The page (app/http/templates/console.html) calls PromptStudioConsole.mount(element, config) with
// {graphqlURL, wsURL, graphiqlURL, home}. Routes live in the address's hash:
//   #/signin                      sign in (password, or a pasted session token / API key)
//   #/                            the projects
//   #/p/<slug>/<section>/...      a project's section (sections.js: executions, prompts, deployments,
//                                 traces)
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Api, userErrorMessage } from "./api.js";
import { SECTIONS, availableSections, rootFields } from "./sections.js";
import { ErrorBox, Loading, go, href, useAsync, useRoute } from "./ui.jsx";
import "./console.css";

const LAST_PROJECT = "promptstudio.console.project";

export function mount(element, config) {
  const api = new Api(config);
  element.textContent = "";
  render(<App api={api} config={config} />, element);
  return api;
}

function App({ api, config }) {
  const [token, setToken] = useState(api.token);
  const route = useRoute();
  useEffect(() => api.onChange((s) => setToken(s.token)), [api]);
  useKeyboard(route);
  if (!token) return <SignIn api={api} config={config} />;
  return <SignedIn api={api} config={config} route={route} />;
}

const LOG_IN = `mutation LogIn($login: String!, $password: String!) {
  logIn(input: {login: $login, password: $password}) { token user { username } userErrors { code field message } }
}`;

const WHO = `{ viewer { username displayName } projects(first: 1) { nodes { slug } } }`;

function SignIn({ api, config }) {
  const [mode, setMode] = useState("password");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [remember, setRemember] = useState(true);

  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setError(null);
    setBusy(true);
    try {
      if (mode === "password") {
        const { logIn } = await api.request(LOG_IN, { login: form.get("login"), password: form.get("password") });
        const problem = userErrorMessage(logIn);
        if (problem) throw new Error(problem);
        api.setToken(logIn.token, remember);
      } else {
        const token = String(form.get("token") || "").trim().replace(/^bearer\s+/i, "");
        if (!token) throw new Error("Paste a session token or an API key.");
        const previous = api.token;
        api.token = token; // try it before keeping it
        try {
          await api.request(WHO);
        } catch (err) {
          api.token = previous;
          throw err;
        }
        api.setToken(token, remember);
      }
      if (!location.hash || location.hash === "#/signin") go();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main id="main" class="signin">
      <h1>Prompt Studio console</h1>
      <p class="muted">
        A live monitor of your projects: executions as they happen, prompts and their versions, deployments.
      </p>
      <div role="tablist" aria-label="How to sign in" class="tabs">
        <button role="tab" aria-selected={mode === "password"} onClick={() => setMode("password")}>Password</button>
        <button role="tab" aria-selected={mode === "token"} onClick={() => setMode("token")}>Token or API key</button>
      </div>
      <form onSubmit={submit} aria-describedby="signin-error">
        {mode === "password" ? (
          <>
            <label>
              Email or username
              <input name="login" autocomplete="username" required autofocus />
            </label>
            <label>
              Password
              <input name="password" type="password" autocomplete="current-password" required />
            </label>
          </>
        ) : (
          <label>
            Session token (from <code>logIn</code> or <code>signUp</code>) or API key
            <textarea name="token" rows={3} required autofocus spellcheck={false} />
          </label>
        )}
        <label class="inline">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.currentTarget.checked)} /> Keep me signed
          in on this browser
        </label>
        <div id="signin-error">
          <ErrorBox error={error} />
        </div>
        <button type="submit" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
      </form>
      <p class="muted small">
        No account yet? Sign up with the <code>signUp</code> mutation in <a href={config.graphiqlURL}>GraphiQL</a>, or load
        sample data with <code>promptstudio demo</code>.
      </p>
    </main>
  );
}

const PROJECTS = `{ viewer { username displayName isSuperuser }
  projects(first: 100) { nodes { id slug name description viewerRole settings { environments defaultEnvironment } } } }`;

const LOG_OUT = `mutation { logOut { ok userErrors { code message } } }`;

function SignedIn({ api, config, route }) {
  const q = useAsync(() => api.request(PROJECTS), [api.token]);
  const fields = useAsync(() => rootFields(api), [api.token]);
  const projects = q.data ? q.data.projects.nodes : [];
  const slug = route[0] === "p" ? route[1] : null;
  const project = slug ? projects.find((p) => p.slug === slug) : null;
  const sections = availableSections(fields.data);
  const section = project ? sections.find((s) => s.id === (route[2] || "executions")) : null;

  useEffect(() => {
    if (project) {
      try {
        localStorage.setItem(LAST_PROJECT, project.slug);
      } catch {
        /* ignore */
      }
    }
  }, [project && project.slug]);

  useEffect(() => {
    // "#/" with one project, or the one used last: open it
    if (!q.data || route.length) return;
    let last = null;
    try {
      last = localStorage.getItem(LAST_PROJECT);
    } catch {
      /* ignore */
    }
    const pick = projects.length === 1 ? projects[0] : projects.find((p) => p.slug === last);
    if (pick) go("p", pick.slug, "executions");
  }, [q.data, route.length]);

  const signOut = async () => {
    try {
      await api.request(LOG_OUT);
    } catch {
      /* an API key cannot log out; forget it all the same */
    }
    api.setToken(null);
    go("signin");
  };

  const viewer = q.data && q.data.viewer;
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main").focus(); }}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={config.home}>Prompt Studio</a>
        <nav aria-label="Project">
          <label>
            <span class="sr-only">Project</span>
            <select
              value={slug || ""}
              onChange={(e) => (e.currentTarget.value ? go("p", e.currentTarget.value, route[2] || "executions") : go())}
            >
              <option value="">Choose a project…</option>
              {projects.map((p) => (
                <option value={p.slug}>{p.name}</option>
              ))}
            </select>
          </label>
          {project
            ? sections.map((s) => (
                <a href={href("p", project.slug, s.id)} aria-current={section && section.id === s.id ? "page" : undefined}>
                  {s.title}
                </a>
              ))
            : null}
        </nav>
        <div class="who">
          <a href={config.graphiqlURL}>GraphiQL</a>
          <span class="muted">{viewer ? viewer.displayName || viewer.username : "API key"}</span>
          <button onClick={signOut}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <ErrorBox error={q.error} />
        {!q.data && q.loading ? <Loading what="your projects" /> : null}
        {q.data && !slug ? <ProjectList projects={projects} /> : null}
        {q.data && slug && !project ? <p class="empty">No project “{slug}”, or you may not see it.</p> : null}
        {project && section ? <section.view api={api} project={project} rest={route.slice(3)} /> : null}
        {project && !section ? <p class="empty">This server has no “{route[2]}” section.</p> : null}
      </main>
      <footer class="muted small">
        Keys: <kbd>g</kbd> then{" "}
        {sections.map((s) => (
          <>
            <kbd>{s.key}</kbd> {s.title.toLowerCase()},{" "}
          </>
        ))}
        <kbd>h</kbd> projects; <kbd>Esc</kbd> back.
      </footer>
    </>
  );
}

function ProjectList({ projects }) {
  if (!projects.length) {
    return (
      <p class="empty">
        You have no projects yet. Create one with <code>createProject</code> in GraphiQL, or run{" "}
        <code>promptstudio demo</code>.
      </p>
    );
  }
  return (
    <section aria-labelledby="projects-title">
      <h2 id="projects-title">Projects</h2>
      <ul class="cards">
        {projects.map((p) => (
          <li class="card">
            <a href={href("p", p.slug, "executions")}>
              <strong>{p.name}</strong> <span class="muted">{p.slug}</span>
            </a>
            {p.description ? <p class="small">{p.description}</p> : null}
            <p class="muted small">
              {p.viewerRole ? `you are ${p.viewerRole.toLowerCase()}` : "superuser"} · {p.settings.environments.join(", ")}
            </p>
          </li>
        ))}
      </ul>
    </section>
  );
}

/** g e / g p / g d / g t (a section's key) / g h to move between sections; Esc goes up one level. */
function useKeyboard(route) {
  // The "g" pressed just before a route change (a listener replaced) still counts for the next key.
  const pending = useRef({ prefix: false, timer: null });
  useEffect(() => {
    const state = pending.current;
    const onKey = (e) => {
      const t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
      const slug = route[0] === "p" ? route[1] : null;
      if (e.key === "Escape" && route.length > 3) {
        go(...route.slice(0, 3));
        return;
      }
      if (state.prefix) {
        state.prefix = false;
        clearTimeout(state.timer);
        const target = SECTIONS.find((s) => s.key === e.key);
        if (e.key === "h") go();
        else if (target && slug) go("p", slug, target.id);
        return;
      }
      if (e.key === "g") {
        state.prefix = true;
        clearTimeout(state.timer);
        state.timer = setTimeout(() => (state.prefix = false), 1500);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [route.join("/")]);
}

