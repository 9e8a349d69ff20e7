// Small shared pieces: route hook, formatting, status badges, async data hook, messages.
import { useEffect, useState, useCallback, useRef } from "preact/hooks";

/** The hash route as parts: "#/p/demo/executions" -> ["p", "demo", "executions"]. */
export function useRoute() {
  const read = () =>
    (location.hash.replace(/^#\/?/, "").split("?")[0] || "")
      .split("/")
      .filter(Boolean)
      .map(decodeURIComponent);
  const [parts, setParts] = useState(read);
  useEffect(() => {
    const changed = () => setParts(read());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return parts;
}

export const href = (...parts) => "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
export const go = (...parts) => {
  location.hash = href(...parts).slice(1);
};

/** Run `load()` when `deps` change: {data, error, loading, reload, setData}. */
export function useAsync(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((s) => ({ ...s, loading: true, error: null }));
    load().then(
      (data) => mine === generation.current && setState({ data, error: null, loading: false }),
      (error) => mine === generation.current && setState({ data: null, error, loading: false }),
    );
  }, deps); // eslint-disable-line react-hooks/exhaustive-deps
  useEffect(run, [run]);
  const setData = (update) => setState((s) => ({ ...s, data: typeof update === "function" ? update(s.data) : update }));
  return { ...state, reload: run, setData };
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      {error.message || String(error)}
      {error.code ? <span class="muted"> ({error.code})</span> : null}
    </div>
  );
}

export function Loading({ what }) {
  return (
    <p class="muted" aria-busy="true">
      Loading {what}…
    </p>
  );
}

export function Status({ status }) {
  return <span class={`status status-${(status || "").toLowerCase()}`}>{status}</span>;
}

export function Validation({ status }) {
  if (!status || status === "SKIPPED") return <span class="muted">—</span>;
  return <span class={`status validation-${status.toLowerCase()}`}>{status}</span>;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "medium" });

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? timeOnly.format(d) : dateTime.format(d);
}

export const ms = (n) => (n === null || n === undefined ? "—" : n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(2)} s`);
export const usd = (v) => (v === null || v === undefined ? "—" : `$${Number(v).toFixed(6).replace(/0{1,4}$/, "")}`);
export const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString());
export const pct = (n) => (n === null || n === undefined ? "—" : `${Math.round(n * 100)}%`);

export function Json({ value }) {
  if (value === null || value === undefined) return <span class="muted">—</span>;
  return <pre class="code">{JSON.stringify(value, null, 2)}</pre>;
}

/** A bar of an environment's traffic split: one segment per version. */
export function SplitBar({ deployments, link }) {
  const sorted = [...deployments].sort((a, b) => a.version.number - b.version.number);
  return (
    <div class="split" role="img" aria-label={sorted.map((d) => `version ${d.version.number}: ${d.trafficPercentage}%`).join(", ")}>
      {sorted.map((d, i) => (
        <a
          key={d.version.number}
          class={`split-part split-${i % 4}`}
          style={{ flexGrow: d.trafficPercentage }}
          href={link ? link(d.version.number) : undefined}
          title={`version ${d.version.number}: ${d.trafficPercentage}%`}
        >
          v{d.version.number} · {d.trafficPercentage}%
        </a>
      ))}
    </div>
  );
}
