// Prompts: the list, one prompt (its versions, a version's content, deployments, validations) and a
// side-by-side diff of two versions (PromptVersion.diff).
import { useState } from "preact/hooks";
import { ErrorBox, Json, Loading, SplitBar, Status, go, href, when, useAsync } from "./ui.jsx";

const LIST = `query Prompts($slug: String!, $search: String) {
  project(slug: $slug) {
    prompts(first: 100, filter: {search: $search, status: [DRAFT, PUBLISHED, ARCHIVED]}, orderBy: {field: NAME, direction: ASC}) {
      nodes { id name description status tags versionCount updatedAt
              deployments { environment trafficPercentage version { number } } }
    }
  }
}`;

export function PromptsView({ api, project, rest }) {
  const [name, sub, a, b] = rest;
  if (name && sub === "diff") return <DiffView api={api} project={project} name={name} a={Number(a)} b={Number(b)} />;
  if (name) return <PromptView api={api} project={project} name={name} number={sub === "v" ? Number(a) : null} />;
  return <PromptList api={api} project={project} />;
}

function PromptList({ api, project }) {
  const [search, setSearch] = useState("");
  const list = useAsync(() => api.request(LIST, { slug: project.slug, search: search || null }), [project.slug, search]);
  const prompts = list.data && list.data.project ? list.data.project.prompts.nodes : null;
  return (
    <section aria-labelledby="prompts-title">
      <div class="toolbar">
        <h2 id="prompts-title">Prompts</h2>
        <label class="push">
          Find{" "}
          <input type="search" value={search} placeholder="name or description" onInput={(e) => setSearch(e.currentTarget.value)} />
        </label>
      </div>
      <ErrorBox error={list.error} />
      {!prompts && list.loading ? <Loading what="prompts" /> : null}
      {prompts && !prompts.length ? <p class="empty">No prompts{search ? " match" : " yet"}.</p> : null}
      {prompts && prompts.length ? (
        <table class="grid">
          <thead>
            <tr>
              <th scope="col">Name</th><th scope="col">Status</th><th scope="col" class="n">Versions</th>
              <th scope="col">Tags</th><th scope="col">Deployed</th><th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {prompts.map((p) => (
              <tr key={p.id}>
                <td>
                  <a href={href("p", project.slug, "prompts", p.name)}>{p.name}</a>
                  {p.description ? <div class="muted small">{p.description}</div> : null}
                </td>
                <td><Status status={p.status} /></td>
                <td class="n">{p.versionCount}</td>
                <td>{p.tags.map((t) => <span class="tag">{t}</span>)}</td>
                <td>{environmentsOf(p.deployments).join(", ") || <span class="muted">—</span>}</td>
                <td>{when(p.updatedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

const environmentsOf = (deployments) => [...new Set(deployments.map((d) => d.environment))];

const CONTENT = `id number kind format template systemPrompt commitMessage createdAt contentHash isLatest
  messages { role content }
  variables { name type required defaultValue description }
  modelSettings { provider model temperature maxTokens topP stop extra }
  outputSchema author { username } restoredFrom { number }`;

const PROMPT = `query Prompt($slug: String!, $name: String!, $number: Int!, $pinned: Boolean!) {
  project(slug: $slug) {
    settings { environments }
    prompt(name: $name) {
      id name description status tags versionCount category createdAt
      versions(first: 100) { nodes { id number commitMessage createdAt author { username } isLatest
                                     deployments { environment trafficPercentage } } }
      deployments { environment trafficPercentage deployedAt version { number } }
      validations(includeInactive: true) { id name type config isActive }
      latestVersion @skip(if: $pinned) { ${CONTENT} }
      version(number: $number) @include(if: $pinned) { ${CONTENT} }
    }
  }
}`;

function PromptView({ api, project, name, number }) {
  const q = useAsync(
    () => api.request(PROMPT, { slug: project.slug, name, number: number || 0, pinned: !!number }),
    [project.slug, name, number],
  );
  const [older, setOlder] = useState(null);
  const [newer, setNewer] = useState(null);
  if (q.error) return <ErrorBox error={q.error} />;
  if (!q.data) return <Loading what="the prompt" />;
  const p = q.data.project && q.data.project.prompt;
  if (!p) return <p class="empty">No prompt named “{name}” in this project, or you may not read its prompts.</p>;
  const shown = number ? p.version : p.latestVersion;
  const versions = p.versions.nodes;
  const a = older ?? (versions[1] ? versions[1].number : null);
  const b = newer ?? (versions[0] ? versions[0].number : null);
  const environments = q.data.project.settings.environments;
  const compare = (e) => {
    e.preventDefault();
    if (a && b && a !== b) go("p", project.slug, "prompts", p.name, "diff", Math.min(a, b), Math.max(a, b));
  };
  return (
    <section aria-labelledby="prompt-title" class="detail">
      <p><a href={href("p", project.slug, "prompts")}>← Prompts</a></p>
      <div class="toolbar">
        <h2 id="prompt-title">{p.name} <Status status={p.status} /></h2>
      </div>
      {p.description ? <p>{p.description}</p> : null}
      <div class="columns">
        <div>
          <h3>Versions</h3>
          <form onSubmit={compare} class="versions">
            <table class="grid">
              <thead>
                <tr>
                  <th scope="col">Old</th><th scope="col">New</th><th scope="col">Version</th>
                  <th scope="col">Message</th><th scope="col">By</th><th scope="col">Created</th><th scope="col">Serving</th>
                </tr>
              </thead>
              <tbody>
                {versions.map((v) => (
                  <tr key={v.id} class={shown && shown.number === v.number ? "selected" : ""}>
                    <td><input type="radio" name="old" aria-label={`compare from version ${v.number}`} checked={a === v.number} onChange={() => setOlder(v.number)} /></td>
                    <td><input type="radio" name="new" aria-label={`compare to version ${v.number}`} checked={b === v.number} onChange={() => setNewer(v.number)} /></td>
                    <td>
                      <a href={href("p", project.slug, "prompts", p.name, "v", v.number)}>v{v.number}</a>
                      {v.isLatest ? <span class="tag">latest</span> : null}
                    </td>
                    <td>{v.commitMessage || <span class="muted">—</span>}</td>
                    <td>{v.author ? v.author.username : "—"}</td>
                    <td>{when(v.createdAt)}</td>
                    <td>{v.deployments.map((d) => <span class="tag">{d.environment} {d.trafficPercentage}%</span>)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <button type="submit" disabled={!a || !b || a === b}>
              Compare v{Math.min(a || 0, b || 0)} ↔ v{Math.max(a || 0, b || 0)}
            </button>
          </form>
        </div>
        <div>
          <h3>Deployments</h3>
          <dl class="facts">
            {environments.map((env) => {
              const live = p.deployments.filter((d) => d.environment === env);
              return (
                <>
                  <dt>{env}</dt>
                  <dd>
                    {live.length ? (
                      <SplitBar deployments={live} link={(n) => href("p", project.slug, "prompts", p.name, "v", n)} />
                    ) : (
                      <span class="muted">not deployed</span>
                    )}
                  </dd>
                </>
              );
            })}
          </dl>
          <h3>Validations</h3>
          {p.validations.length ? (
            <ul class="results">
              {p.validations.map((v) => (
                <li>
                  <strong>{v.name}</strong> <span class="tag">{v.type}</span>
                  {v.isActive ? null : <span class="tag">inactive</span>}
                  <code class="small"> {JSON.stringify(v.config)}</code>
                </li>
              ))}
            </ul>
          ) : (
            <p class="muted">None.</p>
          )}
        </div>
      </div>
      {shown ? <VersionContent version={shown} /> : <p class="empty">No version {number}.</p>}
    </section>
  );
}

function VersionContent({ version: v }) {
  return (
    <article aria-labelledby="version-title">
      <h3 id="version-title">
        Version {v.number} <span class="muted small">{v.kind} · {v.format} · {v.contentHash.slice(0, 12)}</span>
        {v.restoredFrom ? <span class="tag">restored from v{v.restoredFrom.number}</span> : null}
      </h3>
      {v.systemPrompt ? (<><h4>System prompt</h4><pre class="code">{v.systemPrompt}</pre></>) : null}
      {v.template !== null ? (<><h4>Template</h4><pre class="code">{v.template}</pre></>) : null}
      {v.messages ? (
        <>
          <h4>Messages</h4>
          {v.messages.map((m) => (
            <div class="message"><span class="tag">{m.role}</span><pre class="code">{m.content}</pre></div>
          ))}
        </>
      ) : null}
      <h4>Variables</h4>
      {v.variables.length ? (
        <table class="grid">
          <thead><tr><th scope="col">Name</th><th scope="col">Type</th><th scope="col">Required</th><th scope="col">Default</th></tr></thead>
          <tbody>
            {v.variables.map((x) => (
              <tr><td><code>{x.name}</code></td><td>{x.type}</td><td>{x.required ? "yes" : "no"}</td>
                <td>{x.defaultValue === null ? "—" : JSON.stringify(x.defaultValue)}</td></tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted">None.</p>}
      <h4>Model settings</h4>
      <Json value={v.modelSettings} />
    </article>
  );
}

const PAIR = `query Pair($slug: String!, $name: String!, $a: Int!, $b: Int!) {
  project(slug: $slug) { prompt(name: $name) { id name versionCount
    a: version(number: $a) { id number } b: version(number: $b) { id number } } }
}`;

const DIFF = `query Diff($id: ID!, $against: ID!) {
  node(id: $id) { ... on PromptVersion {
    diff(against: $against) { addedLines removedLines changedFields variablesAdded variablesRemoved
      hunks { header lines { kind text oldNumber newNumber } } }
  } }
}`;

function DiffView({ api, project, name, a, b }) {
  const q = useAsync(async () => {
    const data = await api.request(PAIR, { slug: project.slug, name, a, b });
    const p = data.project && data.project.prompt;
    if (!p || !p.a || !p.b) return { prompt: p, diff: null };
    const d = await api.request(DIFF, { id: p.b.id, against: p.a.id });
    return { prompt: p, diff: d.node && d.node.diff };
  }, [project.slug, name, a, b]);
  const back = <p><a href={href("p", project.slug, "prompts", name)}>← {name}</a></p>;
  if (q.error) return <>{back}<ErrorBox error={q.error} /></>;
  if (!q.data) return <Loading what="the diff" />;
  const { prompt, diff } = q.data;
  if (!prompt) return <>{back}<p class="empty">No prompt named “{name}”.</p></>;
  if (!diff) return <>{back}<p class="empty">Version {prompt.a ? b : a} does not exist (the latest is {prompt.versionCount}).</p></>;
  const numbers = Array.from({ length: prompt.versionCount }, (_, i) => i + 1);
  const pick = (which) => (e) => {
    const n = Number(e.currentTarget.value);
    go("p", project.slug, "prompts", name, "diff", which === "a" ? n : a, which === "b" ? n : b);
  };
  return (
    <section aria-labelledby="diff-title" class="detail">
      {back}
      <div class="toolbar">
        <h2 id="diff-title">
          {name}: v{a} ↔ v{b}
        </h2>
        <label class="push">Old <select value={a} onChange={pick("a")}>{numbers.map((n) => <option value={n}>v{n}</option>)}</select></label>
        <label>New <select value={b} onChange={pick("b")}>{numbers.map((n) => <option value={n}>v{n}</option>)}</select></label>
      </div>
      <p class="diff-summary">
        <span class="added">+{diff.addedLines}</span> <span class="removed">−{diff.removedLines}</span>
        {diff.changedFields.length ? <> · changed: {diff.changedFields.join(", ")}</> : " · no changes"}
        {diff.variablesAdded.length ? <> · variables added: {diff.variablesAdded.join(", ")}</> : null}
        {diff.variablesRemoved.length ? <> · variables removed: {diff.variablesRemoved.join(", ")}</> : null}
      </p>
      <table class="diff" aria-label={`differences between version ${a} and version ${b}`}>
        <colgroup><col class="ln" /><col /><col class="ln" /><col /></colgroup>
        <thead>
          <tr><th scope="col" colspan={2}>v{a}</th><th scope="col" colspan={2}>v{b}</th></tr>
        </thead>
        {diff.hunks.map((h) => (
          <tbody>
            <tr class="hunk"><td colspan={4}>{h.header}</td></tr>
            {sideBySide(h.lines).map(([left, right]) => (
              <tr>
                <td class="ln">{left ? left.oldNumber : ""}</td>
                <td class={left ? `side ${left.kind.toLowerCase()}` : "side empty"}>{left ? left.text : ""}</td>
                <td class="ln">{right ? right.newNumber : ""}</td>
                <td class={right ? `side ${right.kind.toLowerCase()}` : "side empty"}>{right ? right.text : ""}</td>
              </tr>
            ))}
          </tbody>
        ))}
      </table>
    </section>
  );
}

/** Unified lines as [old, new] pairs: context on both sides, runs of removed and added lines facing each other. */
export function sideBySide(lines) {
  const rows = [];
  let removed = [];
  let added = [];
  const flush = () => {
    for (let i = 0; i < Math.max(removed.length, added.length); i++) rows.push([removed[i] || null, added[i] || null]);
    removed = [];
    added = [];
  };
  for (const line of lines) {
    if (line.kind === "REMOVED") removed.push(line);
    else if (line.kind === "ADDED") added.push(line);
    else {
      flush();
      rows.push([line, line]);
    }
  }
  flush();
  return rows;
}
