// Executions: the live list (projectExecutions) and one execution streaming in (executionUpdated).
import { useEffect, useRef, useState } from "preact/hooks";
import { userErrorMessage } from "./api.js";
import { ErrorBox, Json, Loading, Status, Validation, href, ms, num, usd, useAsync, when } from "./ui.jsx";

const ROW = `id status environment createdAt startedAt completedAt latencyMs costUsd validationStatus error
  usage { inputTokens outputTokens totalTokens }
  prompt { id name } version { id number }`;

const LIST = `query Executions($slug: String!, $filter: ExecutionFilter) {
  project(slug: $slug) { id executions(first: 50, filter: $filter) { nodes { ${ROW} } } }
}`;

const FEED = `subscription Feed($projectId: ID!, $filter: ExecutionFilter) {
  projectExecutions(projectId: $projectId, filter: $filter) { type sequence execution { ${ROW} } }
}`;

const STATUSES = ["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"];
const RANK = { PENDING: 0, RUNNING: 1, COMPLETED: 2, FAILED: 2, CANCELLED: 2 };
const LIMIT = 200; // rows kept on screen

const sortRows = (rows) =>
  rows.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0)).slice(0, LIMIT);

export function ExecutionsView({ api, project, rest }) {
  if (rest[0]) return <ExecutionDetail api={api} project={project} id={rest[0]} />;
  return <ExecutionList api={api} project={project} />;
}

function ExecutionList({ api, project }) {
  const [status, setStatus] = useState("");
  const filter = status ? { status: [status] } : null;
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  const [news, setNews] = useState("");
  const seen = useRef(new Map()); // id -> last sequence shown

  useEffect(() => {
    let active = true;
    let connections = api.connections;
    seen.current = new Map();
    setRows(null);
    setError(null);
    const load = () =>
      api.request(LIST, { slug: project.slug, filter }).then(
        (data) => active && setRows((current) => merge(current, data.project ? data.project.executions.nodes : [])),
        (err) => active && setError(err),
      );
    // A list read while events arrive: an event may be newer than the read (a status only moves forward,
    // but for a retry), and executions only the stream has told of stay.
    const merge = (current, fresh) => {
      if (!current) return fresh;
      const mine = new Map(current.map((r) => [r.id, r]));
      const rows = fresh.map((r) => (mine.has(r.id) && RANK[mine.get(r.id).status] > RANK[r.status] ? mine.get(r.id) : r));
      const ids = new Set(rows.map((r) => r.id));
      for (const r of current) if (!ids.has(r.id) && seen.current.has(r.id)) rows.push(r);
      return sortRows(rows);
    };
    load();
    const stop = api.subscribe(FEED, { projectId: project.id, filter }, {
      onData: ({ projectExecutions: event }) => {
        const e = event.execution;
        const last = seen.current.get(e.id);
        if (last !== undefined && last >= event.sequence) return; // an older event than what is shown
        seen.current.set(e.id, event.sequence);
        setRows((current) => {
          const list = current ? [...current] : [];
          const at = list.findIndex((r) => r.id === e.id);
          if (at >= 0) list[at] = e;
          else {
            list.unshift(e);
            setNews(`New execution of ${e.prompt.name}: ${e.status}`);
          }
          return sortRows(list);
        });
      },
      onError: (err) => active && setError(err),
    });
    const off = api.onChange(({ live: isLive }) => {
      if (!active) return;
      setLive(isLive);
      if (api.connections > connections) {
        // (re)connected: read the list again, for what changed while no subscription was listening
        connections = api.connections;
        load();
      }
    });
    setLive(api.live);
    return () => {
      active = false;
      stop();
      off();
    };
  }, [api, project.id, status]);

  return (
    <section aria-labelledby="executions-title">
      <div class="toolbar">
        <h2 id="executions-title">Executions</h2>
        <span class={live ? "live on" : "live"} aria-live="polite">
          {live ? "● live" : "○ connecting…"}
        </span>
        <label class="push">
          Status{" "}
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="">all</option>
            {STATUSES.map((s) => (
              <option value={s}>{s.toLowerCase()}</option>
            ))}
          </select>
        </label>
      </div>
      <p class="sr-only" aria-live="polite">{news}</p>
      <ErrorBox error={error} />
      {rows === null && !error ? <Loading what="executions" /> : null}
      {rows && rows.length === 0 ? (
        <p class="empty">
          No executions yet. Run a prompt with <code>executePrompt</code> (in <a href="/graphql">GraphiQL</a>) and
          it appears here as it happens.
        </p>
      ) : null}
      {rows && rows.length ? (
        <table class="grid executions">
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Prompt</th>
              <th scope="col">Version</th>
              <th scope="col">Environment</th>
              <th scope="col">Created</th>
              <th scope="col" class="n">Latency</th>
              <th scope="col" class="n">Tokens</th>
              <th scope="col" class="n">Cost</th>
              <th scope="col">Validation</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((e) => (
              <tr key={e.id} data-execution-id={e.id} data-status={e.status}>
                <td>
                  <Status status={e.status} />
                </td>
                <td>
                  <a href={href("p", project.slug, "executions", e.id)}>{e.prompt.name}</a>
                </td>
                <td>v{e.version.number}</td>
                <td>{e.environment || <span class="muted">—</span>}</td>
                <td>{when(e.createdAt)}</td>
                <td class="n">{ms(e.latencyMs)}</td>
                <td class="n">{e.usage ? num(e.usage.totalTokens) : "—"}</td>
                <td class="n">{usd(e.costUsd)}</td>
                <td>
                  <Validation status={e.validationStatus} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </section>
  );
}

const DETAIL = `id status environment priority createdAt startedAt completedAt cancelRequestedAt latencyMs
  timeToFirstTokenMs costUsd attempts maxAttempts provider model error subjectKey output validationStatus
  usage { inputTokens outputTokens totalTokens }
  prompt { id name } version { id number }`;

const FULL = `query Execution($id: ID!) {
  node(id: $id) {
    ... on Execution {
      ${DETAIL} variables renderedPrompt validatedOutput
      validationResults { name passed message }
      logs(first: 100) { nodes { id level message timestamp } }
    }
  }
}`;

const WATCH = `subscription Watch($id: ID!) {
  executionUpdated(id: $id) {
    type sequence delta
    execution { ${DETAIL} }
    log { id level message timestamp }
  }
}`;

const CANCEL = `mutation Cancel($id: ID!) {
  cancelExecution(input: {id: $id}) { execution { id status } userErrors { code field message } }
}`;

const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

// Its trace (written as the execution ends); a server without traces refuses the field: no link then.
const TRACE_OF = `query TraceOf($id: ID!) { node(id: $id) { ... on Execution { trace { traceId } } } }`;

function ExecutionDetail({ api, project, id }) {
  const full = useAsync(() => api.request(FULL, { id }).then((d) => d.node), [id]);
  const [live, setLive] = useState(null); // the execution as the stream says it is now
  const [output, setOutput] = useState(null);
  const [logs, setLogs] = useState([]);
  const [streamError, setStreamError] = useState(null);
  const [cancelError, setCancelError] = useState(null);
  const reload = full.reload;
  const ended = TERMINAL.has((live || full.data || {}).status);
  const trace = useAsync(() => api.request(TRACE_OF, { id }).then((d) => d.node && d.node.trace, () => null), [id, ended]);

  useEffect(() => {
    setLive(null);
    setOutput(null);
    setLogs([]);
    setStreamError(null);
    const stop = api.subscribe(WATCH, { id }, {
      onData: ({ executionUpdated: event }) => {
        setLive(event.execution);
        if (event.type === "OUTPUT_DELTA") setOutput((o) => (o || "") + (event.delta || ""));
        else setOutput(event.execution.output || "");
        if (event.type === "LOG" && event.log) setLogs((l) => (l.some((x) => x.id === event.log.id) ? l : [...l, event.log]));
        if (TERMINAL.has(event.type)) reload(); // the final record: validation results, every log
      },
      onError: setStreamError,
    });
    return stop;
  }, [api, id]);

  if (full.error) return <ErrorBox error={full.error} />;
  if (!full.data && full.loading) return <Loading what="the execution" />;
  if (!full.data) return <p class="empty">No execution with this ID, or you may not read it.</p>;
  const e = { ...full.data, ...(live || {}) };
  const finished = TERMINAL.has(e.status);
  const shownOutput = finished && full.data.status === e.status ? full.data.output : output ?? e.output;
  const allLogs = mergeLogs(full.data.logs.nodes, logs);

  const cancel = async () => {
    setCancelError(null);
    try {
      const { cancelExecution: p } = await api.request(CANCEL, { id });
      const problem = userErrorMessage(p);
      if (problem) setCancelError(new Error(problem));
    } catch (err) {
      setCancelError(err);
    }
  };

  return (
    <section aria-labelledby="execution-title" class="detail" data-execution-id={e.id} data-status={e.status}>
      <p>
        <a href={href("p", project.slug, "executions")}>← Executions</a>
        {trace.data ? (
          <>
            {" · "}
            <a href={href("p", project.slug, "traces", trace.data.traceId)} data-trace-link>Its trace</a>
          </>
        ) : null}
      </p>
      <div class="toolbar">
        <h2 id="execution-title">
          <a href={href("p", project.slug, "prompts", e.prompt.name)}>{e.prompt.name}</a>{" "}
          <a href={href("p", project.slug, "prompts", e.prompt.name, "v", e.version.number)}>v{e.version.number}</a>{" "}
          <Status status={e.status} />
        </h2>
        {!finished ? (
          <button class="push" onClick={cancel} disabled={!!e.cancelRequestedAt}>
            {e.cancelRequestedAt ? "Cancelling…" : "Cancel execution"}
          </button>
        ) : null}
      </div>
      <ErrorBox error={cancelError || streamError} />
      <dl class="facts">
        <dt>Environment</dt><dd>{e.environment || "—"}</dd>
        <dt>Provider / model</dt><dd>{e.provider || "—"} / {e.model || "—"}</dd>
        <dt>Created</dt><dd>{when(e.createdAt)}</dd>
        <dt>Started</dt><dd>{when(e.startedAt)}</dd>
        <dt>Finished</dt><dd>{when(e.completedAt)}</dd>
        <dt>Latency</dt><dd>{ms(e.latencyMs)} (first token {ms(e.timeToFirstTokenMs)})</dd>
        <dt>Tokens</dt><dd>{e.usage ? `${num(e.usage.inputTokens)} in, ${num(e.usage.outputTokens)} out` : "—"}</dd>
        <dt>Cost</dt><dd>{usd(e.costUsd)}</dd>
        <dt>Attempts</dt><dd>{e.attempts} of {e.maxAttempts}</dd>
        <dt>Subject</dt><dd>{e.subjectKey || "—"}</dd>
      </dl>
      {e.error ? <div class="error" role="alert">{e.error}</div> : null}
      <h3>Output</h3>
      <pre class="output code" aria-live="polite" aria-busy={!finished}>
        {shownOutput || (finished ? "" : "…")}
      </pre>
      <h3>
        Validation <Validation status={e.validationStatus} />
      </h3>
      {full.data.validationResults.length ? (
        <ul class="results">
          {full.data.validationResults.map((r) => (
            <li class={r.passed ? "pass" : "fail"}>
              <strong>{r.passed ? "✓ passed" : "✗ failed"}</strong> {r.name}
              {r.message ? <span class="muted"> — {r.message}</span> : null}
            </li>
          ))}
        </ul>
      ) : (
        <p class="muted">{finished ? "No validations ran." : "Validations run when the output is complete."}</p>
      )}
      <h3>Logs</h3>
      {allLogs.length ? (
        <table class="grid logs">
          <thead>
            <tr><th scope="col">Time</th><th scope="col">Level</th><th scope="col">Message</th></tr>
          </thead>
          <tbody>
            {allLogs.map((l) => (
              <tr key={l.id} class={`log-${l.level.toLowerCase()}`}>
                <td>{when(l.timestamp)}</td>
                <td>{l.level}</td>
                <td>{l.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p class="muted">No logs.</p>
      )}
      <details>
        <summary>Variables and rendered prompt</summary>
        <h4>Variables</h4>
        <Json value={full.data.variables} />
        <h4>Rendered prompt</h4>
        <Json value={full.data.renderedPrompt} />
        {full.data.validatedOutput !== null ? (
          <>
            <h4>Validated output</h4>
            <Json value={full.data.validatedOutput} />
          </>
        ) : null}
      </details>
    </section>
  );
}

function mergeLogs(a, b) {
  const byId = new Map();
  for (const l of [...a, ...b]) byId.set(l.id, l);
  return [...byId.values()].sort((x, y) => (x.timestamp < y.timestamp ? -1 : x.timestamp > y.timestamp ? 1 : 0));
}

