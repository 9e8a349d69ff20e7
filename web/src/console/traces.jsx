// Traces: the live list (Project.traces, then Subscription.projectTraces) and one trace as a tree of
// its spans, with a selected span's attributes and events.
import { useEffect, useRef, useState } from "preact/hooks";
import { ErrorBox, Loading, Status, href, ms, num, usd, useAsync, when } from "./ui.jsx";

const ROW = `id traceId name status error startTime endTime durationMs spanCount errorCount endUserId sessionId
  updatedAt usage { calls totalTokens costUsd } execution { id }`;

const LIST = `query Traces($slug: String!, $filter: TraceFilter, $after: String) {
  project(slug: $slug) {
    id
    traces(first: 50, after: $after, filter: $filter) { nodes { ${ROW} } pageInfo { hasNextPage endCursor } }
  }
}`;

const FEED = `subscription TraceFeed($projectId: ID!, $filter: TraceFilter) {
  projectTraces(projectId: $projectId, filter: $filter) { ${ROW} }
}`;

const STATUSES = ["OK", "ERROR", "UNSET"];
const LIMIT = 500; // rows kept on screen
/** What an API key without the scope is told (the server's refusal says FORBIDDEN). */
const NO_SCOPE = "You may not read this project's traces: an API key needs the TRACES_READ (or TRACES_WRITE) scope.";

const newestFirst = (a, b) => (a.startTime < b.startTime ? 1 : a.startTime > b.startTime ? -1 : a.id < b.id ? 1 : -1);
/** The later of two states of one trace (its summary only moves forward, with updatedAt). */
const later = (a, b) => (!a ? b : !b ? a : a.updatedAt > b.updatedAt ? a : b);

export function TracesView({ api, project, rest }) {
  if (rest[0]) return <TraceDetail api={api} project={project} traceId={rest[0]} spanId={rest[1] || null} />;
  return <TraceList api={api} project={project} />;
}

function TraceList({ api, project }) {
  const [status, setStatus] = useState("");
  const [name, setName] = useState("");
  const [rows, setRows] = useState(null);
  const [more, setMore] = useState(null); // the cursor of the next page, or null
  const [error, setError] = useState(null);
  const [forbidden, setForbidden] = useState(false);
  const [live, setLive] = useState(false);
  const [news, setNews] = useState("");
  const streamed = useRef(new Set()); // ids the stream has told of
  const filter = status || name ? { ...(status ? { status } : {}), ...(name ? { name } : {}) } : null;

  useEffect(() => {
    let active = true;
    let connections = api.connections;
    streamed.current = new Set();
    setRows(null);
    setMore(null);
    setError(null);
    setForbidden(false);
    // A list read while events arrive: keep the later state of each trace, and the traces only the stream
    // has told of.
    const merge = (current, fresh) => {
      if (!current) return fresh;
      const mine = new Map(current.map((r) => [r.id, r]));
      const list = fresh.map((r) => later(mine.get(r.id), r));
      const ids = new Set(list.map((r) => r.id));
      for (const r of current) if (!ids.has(r.id) && streamed.current.has(r.id)) list.push(r);
      return list.sort(newestFirst).slice(0, LIMIT);
    };
    const load = () =>
      api.request(LIST, { slug: project.slug, filter }).then(
        (data) => {
          if (!active) return;
          const page = data.project ? data.project.traces : { nodes: [], pageInfo: {} };
          setRows((current) => merge(current, page.nodes));
          setMore(page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null);
        },
        (err) => active && setError(err),
      );
    load();
    const stop = api.subscribe(FEED, { projectId: project.id, filter }, {
      onData: ({ projectTraces: t }) => {
        if (!active) return;
        streamed.current.add(t.id);
        setRows((current) => {
          const list = current ? [...current] : [];
          const at = list.findIndex((r) => r.id === t.id);
          if (at >= 0) list[at] = later(list[at], t);
          else {
            list.push(t);
            setNews(`New trace ${t.name || t.traceId}: ${t.status}`);
          }
          return list.sort(newestFirst).slice(0, LIMIT);
        });
      },
      onError: (err) => {
        if (!active) return;
        if (err.code === "FORBIDDEN") setForbidden(true);
        else setError(err);
      },
    });
    const off = api.onChange(({ live: isLive }) => {
      if (!active) return;
      setLive(isLive);
      if (api.connections > connections) {
        connections = api.connections; // (re)connected: read again, for what changed while nobody listened
        load();
      }
    });
    setLive(api.live);
    return () => {
      active = false;
      stop();
      off();
    };
  }, [api, project.id, status, name]);

  const older = async () => {
    const after = more;
    setMore(null);
    try {
      const data = await api.request(LIST, { slug: project.slug, filter, after });
      const page = data.project.traces;
      setRows((current) => {
        const ids = new Set((current || []).map((r) => r.id));
        return [...(current || []), ...page.nodes.filter((r) => !ids.has(r.id))].sort(newestFirst);
      });
      setMore(page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null);
    } catch (err) {
      setError(err);
      setMore(after);
    }
  };

  return (
    <section aria-labelledby="traces-title">
      <div class="toolbar">
        <h2 id="traces-title">Traces</h2>
        <span class={live && !forbidden ? "live on" : "live"} aria-live="polite">
          {forbidden ? "" : live ? "● live" : "○ connecting…"}
        </span>
        <label class="push">
          Name{" "}
          <input
            type="search"
            value={name}
            placeholder="exact root span name"
            onChange={(e) => setName(e.currentTarget.value.trim())}
          />
        </label>
        <label>
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
      {forbidden ? (
        <div class="error" role="alert" data-forbidden>
          {NO_SCOPE}
        </div>
      ) : null}
      <ErrorBox error={error} />
      {rows === null && !error && !forbidden ? <Loading what="traces" /> : null}
      {rows && rows.length === 0 && !forbidden ? (
        <p class="empty">
          {filter ? "No traces match." : "No traces yet."} Every execution becomes a trace, and applications send theirs
          with OpenTelemetry (OTLP/HTTP to <code>/v1/traces</code>); they appear here as they arrive.
        </p>
      ) : null}
      {rows && rows.length && !forbidden ? (
        <table class="grid traces">
          <thead>
            <tr>
              <th scope="col">Status</th>
              <th scope="col">Name</th>
              <th scope="col">Started</th>
              <th scope="col" class="n">Duration</th>
              <th scope="col" class="n">Spans</th>
              <th scope="col" class="n">Tokens</th>
              <th scope="col" class="n">Cost</th>
              <th scope="col">End user / session</th>
              <th scope="col">Execution</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={t.id} data-trace-id={t.traceId} data-status={t.status} data-spans={t.spanCount}>
                <td>
                  <Status status={t.status} />
                </td>
                <td>
                  <a href={href("p", project.slug, "traces", t.traceId)}>{t.name || <span class="muted">{t.traceId}</span>}</a>
                  {t.error ? <div class="small bad clip" title={t.error}>{t.error}</div> : null}
                </td>
                <td class="nowrap">{when(t.startTime)}</td>
                <td class="n">{t.endTime ? ms(t.durationMs) : <span class="muted">open</span>}</td>
                <td class="n">
                  {t.spanCount}
                  {t.errorCount ? <span class="bad" title={`${t.errorCount} with errors`}> ({t.errorCount}✗)</span> : null}
                </td>
                <td class="n">{t.usage.calls ? num(t.usage.totalTokens) : "—"}</td>
                <td class="n">{t.usage.calls ? usd(t.usage.costUsd) : "—"}</td>
                <td>
                  {t.endUserId || t.sessionId ? (
                    <>
                      {t.endUserId || <span class="muted">—</span>}
                      {t.sessionId ? <span class="muted"> / {t.sessionId}</span> : null}
                    </>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
                <td>
                  {t.execution ? <a href={href("p", project.slug, "executions", t.execution.id)}>execution</a> : <span class="muted">—</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {more && !forbidden ? (
        <p>
          <button onClick={older}>Older traces</button>
        </p>
      ) : null}
    </section>
  );
}

const SPAN = `id spanId parentSpanId name kind status error startTime endTime durationMs
  usage { provider model inputTokens outputTokens totalTokens cachedInputTokens totalCostUsd }`;

const TRACE = `query Trace($slug: String!, $traceId: String!) {
  project(slug: $slug) {
    id
    trace(traceId: $traceId) {
      ${ROW} metadata tags
      usage { calls inputTokens outputTokens totalTokens costUsd }
      execution { id status prompt { name } version { number } }
      spans(first: 100) { nodes { ${SPAN} } pageInfo { hasNextPage endCursor } }
    }
  }
}`;

const SPANS = `query Spans($slug: String!, $traceId: String!, $after: String) {
  project(slug: $slug) { trace(traceId: $traceId) { spans(first: 100, after: $after) { nodes { ${SPAN} } pageInfo { hasNextPage endCursor } } } }
}`;

const SPAN_DETAIL = `query Span($id: ID!) { node(id: $id) { ... on Span { id attributes events } } }`;

const MAX_SPANS = 2000; // spans read for the tree (20 pages)

/** The trace with (up to MAX_SPANS of) its spans, or null when there is none or it may not be read. */
async function readTrace(api, slug, traceId) {
  const data = await api.request(TRACE, { slug, traceId });
  const trace = data.project && data.project.trace;
  if (!trace) return null;
  const spans = [...trace.spans.nodes];
  let page = trace.spans.pageInfo;
  while (page.hasNextPage && spans.length < MAX_SPANS) {
    const next = await api.request(SPANS, { slug, traceId, after: page.endCursor });
    if (!next.project || !next.project.trace) break;
    spans.push(...next.project.trace.spans.nodes);
    page = next.project.trace.spans.pageInfo;
  }
  return { ...trace, spans, truncated: page.hasNextPage };
}

/**
 * The spans in tree order (a parent before its children, children in start order), each with its depth.
 * A span whose parent has not arrived is shown at the top level, marked as such.
 */
export function spanTree(spans) {
  const bySpanId = new Map(spans.map((s) => [s.spanId, s]));
  const children = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parentSpanId && bySpanId.has(s.parentSpanId) && s.parentSpanId !== s.spanId) {
      if (!children.has(s.parentSpanId)) children.set(s.parentSpanId, []);
      children.get(s.parentSpanId).push(s);
    } else roots.push(s);
  }
  const out = [];
  const placed = new Set();
  const visit = (root) => {
    const stack = [[root, 0]];
    while (stack.length) {
      const [s, depth] = stack.pop();
      if (placed.has(s.spanId)) continue;
      placed.add(s.spanId);
      const kids = children.get(s.spanId) || [];
      out.push({ span: s, depth, orphan: !!s.parentSpanId && !bySpanId.has(s.parentSpanId), children: kids.length });
      for (let i = kids.length - 1; i >= 0; i--) stack.push([kids[i], depth + 1]);
    }
  };
  roots.forEach(visit);
  for (const s of spans) if (!placed.has(s.spanId)) visit(s); // a cycle of parents: shown all the same
  return out;
}

function TraceDetail({ api, project, traceId, spanId }) {
  const q = useAsync(() => readTrace(api, project.slug, traceId), [project.slug, traceId]);
  const [streamError, setStreamError] = useState(null);
  const shown = useRef(null);
  shown.current = q.data;
  const reload = q.reload;

  // The trace changes while it is open (spans arriving, an end, an error): read it again when the feed says so.
  useEffect(() => {
    let connections = api.connections;
    setStreamError(null);
    const stop = api.subscribe(FEED, { projectId: project.id, filter: null }, {
      onData: ({ projectTraces: t }) => {
        const now = shown.current;
        if (t.traceId === traceId.toLowerCase() && (!now || now.updatedAt !== t.updatedAt)) reload();
      },
      onError: (err) => setStreamError(err.code === "FORBIDDEN" ? null : err),
    });
    const off = api.onChange(() => {
      if (api.connections > connections) {
        connections = api.connections; // (re)connected: what changed while nobody listened
        reload();
      }
    });
    return () => {
      stop();
      off();
    };
  }, [api, project.id, traceId, reload]);

  const back = (
    <p>
      <a href={href("p", project.slug, "traces")}>← Traces</a>
    </p>
  );
  const mine = q.data && q.data.traceId === traceId.toLowerCase() ? q.data : null; // not the last trace shown
  if (q.error) return <>{back}<ErrorBox error={q.error} /></>;
  if (!mine && q.loading) return <>{back}<Loading what="the trace" /></>;
  if (!mine) {
    return (
      <>
        {back}
        <p class="empty">
          No trace <code>{traceId}</code> in this project (yet), or you may not read its traces (an API key needs the
          TRACES_READ scope).
        </p>
      </>
    );
  }
  const t = mine;
  const rows = spanTree(t.spans);
  const selected = spanId ? t.spans.find((s) => s.spanId === spanId) : null;
  const start = Date.parse(t.startTime);
  const ends = t.spans.map((s) => (s.endTime ? Date.parse(s.endTime) : start)).concat(t.endTime ? [Date.parse(t.endTime)] : []);
  const total = Math.max(1, Math.max(start, ...ends) - start); // ms the timeline spans

  return (
    <section aria-labelledby="trace-title" class="detail" data-trace-id={t.traceId} data-status={t.status}>
      {back}
      <div class="toolbar">
        <h2 id="trace-title">
          {t.name || <span class="muted">(no root span yet)</span>} <Status status={t.status} />
        </h2>
        {t.execution ? (
          <a class="push" href={href("p", project.slug, "executions", t.execution.id)} data-execution-link>
            Execution of {t.execution.prompt.name} v{t.execution.version.number} <Status status={t.execution.status} />
          </a>
        ) : null}
      </div>
      <ErrorBox error={streamError} />
      {t.error ? <div class="error">First error: {t.error}</div> : null}
      <dl class="facts">
        <dt>Trace id</dt><dd><code>{t.traceId}</code></dd>
        <dt>Started</dt><dd>{when(t.startTime)}</dd>
        <dt>Ended</dt><dd>{t.endTime ? when(t.endTime) : "not yet"}</dd>
        <dt>Duration</dt><dd>{ms(t.durationMs)}</dd>
        <dt>Spans</dt><dd>{t.spanCount}{t.errorCount ? `, ${t.errorCount} with errors` : ""}</dd>
        <dt>Model calls</dt>
        <dd>
          {t.usage.calls
            ? `${num(t.usage.calls)}: ${num(t.usage.inputTokens)} tokens in, ${num(t.usage.outputTokens)} out, ${usd(t.usage.costUsd)}`
            : "none"}
        </dd>
        <dt>End user / session</dt><dd>{t.endUserId || "—"} / {t.sessionId || "—"}</dd>
        {t.tags.length ? (<><dt>Tags</dt><dd>{t.tags.map((x) => <span class="tag">{x}</span>)}</dd></>) : null}
        {t.metadata !== null && t.metadata !== undefined ? (<><dt>Metadata</dt><dd><Value value={t.metadata} /></dd></>) : null}
      </dl>
      {t.truncated ? <p class="muted">The first {t.spans.length} spans of {t.spanCount}.</p> : null}
      <div class="columns">
        <div>
          <h3 id="spans-title">Spans</h3>
          <p class="muted small">
            <kbd>↑</kbd> <kbd>↓</kbd> move between spans; <kbd>Esc</kbd> back to the traces.
          </p>
          <SpanTree project={project} trace={t} rows={rows} selected={spanId} start={start} total={total} />
        </div>
        <div>
          {selected ? (
            <SpanDetail api={api} span={selected} />
          ) : (
            <p class="empty">Choose a span to see its attributes and events.</p>
          )}
        </div>
      </div>
    </section>
  );
}

function SpanTree({ project, trace, rows, selected, start, total }) {
  const link = (s) => href("p", project.slug, "traces", trace.traceId, s.spanId);
  // ↑/↓ (and k/j) move to the previous/next span and select it
  const onKey = (e) => {
    const step = e.key === "ArrowDown" || e.key === "j" ? 1 : e.key === "ArrowUp" || e.key === "k" ? -1 : 0;
    if (!step || e.ctrlKey || e.metaKey || e.altKey) return;
    const links = [...e.currentTarget.querySelectorAll("a.span-link")];
    const at = links.indexOf(document.activeElement);
    const next = links[at < 0 ? 0 : Math.min(links.length - 1, Math.max(0, at + step))];
    if (!next) return;
    e.preventDefault();
    next.focus();
    location.hash = next.getAttribute("href").slice(1);
  };
  return (
    <table class="grid spans" aria-labelledby="spans-title" onKeyDown={onKey}>
      <thead>
        <tr>
          <th scope="col">Span</th>
          <th scope="col">Status</th>
          <th scope="col" class="n">Duration</th>
          <th scope="col" class="timeline">Timeline</th>
          <th scope="col">Model usage</th>
        </tr>
      </thead>
      <tbody>
        {rows.map(({ span: s, depth, orphan, children }) => {
          const offset = ((Date.parse(s.startTime) - start) / total) * 100;
          const width = s.endTime ? Math.max(0.4, ((Date.parse(s.endTime) - Date.parse(s.startTime)) / total) * 100) : 100 - offset;
          const isSelected = s.spanId === selected;
          return (
            <tr
              key={s.id}
              class={isSelected ? "selected" : undefined}
              data-span-id={s.spanId}
              data-parent-id={s.parentSpanId || ""}
              data-depth={depth}
              data-kind={s.kind}
            >
              <td class="span-name" style={{ paddingLeft: `${10 + Math.min(depth, 20) * 16}px` }}>
                <a
                  class="span-link"
                  href={link(s)}
                  aria-current={isSelected ? "true" : undefined}
                  aria-label={`${s.name}, ${s.kind.toLowerCase()} span, level ${depth + 1}${children ? `, ${children} children` : ""}`}
                >
                  {depth ? <span class="guide" aria-hidden="true">└ </span> : null}
                  {s.name}
                </a>{" "}
                <span class={`tag kind kind-${s.kind.toLowerCase()}`}>{s.kind}</span>
                {orphan ? <span class="muted small" title={`parent ${s.parentSpanId}`}> (parent not arrived)</span> : null}
              </td>
              <td>
                <Status status={s.status} />
              </td>
              <td class="n">{s.endTime ? ms(s.durationMs) : <span class="muted">open</span>}</td>
              <td class="timeline">
                <div class="bar" role="img" aria-label={`starts at ${ms(Math.round((offset * total) / 100))}, ${s.endTime ? ms(s.durationMs) : "still open"}`}>
                  <span
                    class={`bar-fill${s.status === "ERROR" ? " bad" : s.kind === "LLM" ? " llm" : ""}${s.endTime ? "" : " open"}`}
                    style={{ left: `${Math.min(offset, 99.6)}%`, width: `${Math.min(width, 100 - Math.min(offset, 99.6))}%` }}
                  />
                </div>
              </td>
              <td class="usage">
                {s.usage ? (
                  <>
                    <span class="small">{s.usage.model}</span>{" "}
                    <span class="muted small">
                      {num(s.usage.inputTokens)} in · {num(s.usage.outputTokens)} out · {usd(s.usage.totalCostUsd)}
                    </span>
                  </>
                ) : null}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function SpanDetail({ api, span: s }) {
  const more = useAsync(() => api.request(SPAN_DETAIL, { id: s.id }).then((d) => d.node), [s.id]);
  const attributes = more.data && more.data.attributes && typeof more.data.attributes === "object" ? more.data.attributes : {};
  const events = more.data && Array.isArray(more.data.events) ? more.data.events : [];
  return (
    <article class="card span-detail" aria-labelledby="span-title" data-span-id={s.spanId}>
      <h3 id="span-title">
        {s.name} <span class="tag">{s.kind}</span> <Status status={s.status} />
      </h3>
      {s.error ? <div class="error">{s.error}</div> : null}
      <dl class="facts">
        <dt>Span id</dt><dd><code>{s.spanId}</code></dd>
        <dt>Parent</dt><dd>{s.parentSpanId ? <code>{s.parentSpanId}</code> : "— (root)"}</dd>
        <dt>Started</dt><dd>{when(s.startTime)}</dd>
        <dt>Duration</dt><dd>{s.endTime ? ms(s.durationMs) : "still open"}</dd>
        {s.usage ? (
          <>
            <dt>Model</dt><dd>{s.usage.provider} / {s.usage.model}</dd>
            <dt>Tokens</dt>
            <dd>
              {num(s.usage.inputTokens)} in{s.usage.cachedInputTokens ? ` (${num(s.usage.cachedInputTokens)} cached)` : ""},{" "}
              {num(s.usage.outputTokens)} out
            </dd>
            <dt>Cost</dt><dd>{usd(s.usage.totalCostUsd)}</dd>
          </>
        ) : null}
      </dl>
      <h4>Attributes</h4>
      <ErrorBox error={more.error} />
      {!more.data && more.loading ? <Loading what="the attributes" /> : null}
      {more.data ? (
        Object.keys(attributes).length ? (
          <table class="grid attributes">
            <tbody>
              {Object.keys(attributes)
                .sort()
                .map((k) => (
                  <tr key={k}>
                    <th scope="row"><code>{k}</code></th>
                    <td><Value value={attributes[k]} /></td>
                  </tr>
                ))}
            </tbody>
          </table>
        ) : (
          <p class="muted">None.</p>
        )
      ) : null}
      {events.length ? (
        <>
          <h4>Events</h4>
          <ul class="events">
            {events.map((ev) => (
              <li>
                <strong>{ev.name}</strong> <span class="muted small">{when(ev.time)}</span>
                {ev.attributes && Object.keys(ev.attributes).length ? <Value value={ev.attributes} /> : null}
              </li>
            ))}
          </ul>
        </>
      ) : null}
    </article>
  );
}

function Value({ value }) {
  if (typeof value === "string" && (value.length > 120 || value.includes("\n"))) return <pre class="code">{value}</pre>;
  if (typeof value === "string") return <span class="code">{value}</span>;
  if (value === null || typeof value !== "object") return <span class="code">{JSON.stringify(value)}</span>;
  return <pre class="code">{JSON.stringify(value, null, 2)}</pre>;
}
