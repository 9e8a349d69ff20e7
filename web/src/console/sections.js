// The sections of a project in the console: one tab each, routed as #/p/<project slug>/<id>/...
//
// ============================================================================================
// EXTENSION POINT — new sections go in SECTIONS below. A section is
//   { id, title, key, view, requires }
//   id        the route segment (#/p/<slug>/<id>/<rest...>)
//   title     the tab's label; key: the letter of its "g <key>" keyboard shortcut
//   view      a Preact component, called with {api, project, rest} (project: {id, slug, name,
//             settings, viewerRole}; rest: the route's parts after the id)
//   requires  root fields it uses, as "Type.field" (e.g. "Subscription.projectTraces"): the tab
//             is shown only when the server's schema has them all (read once by introspection),
//             so a console built before the API lands, or served by an older server, hides it.
//
// One section is planned and is NOT implemented here on purpose (its schema is not in the API yet;
// see ../shared/contract/pending.txt):
//   - experiments: [experiments] Experiment, ExperimentRun and the live feed
//                  Subscription.experimentProgress — a list of experiments and, per experiment, its
//                  runs' progress and scores by variant.
//     Add: { id: "experiments", title: "Experiments", key: "x", view: ExperimentsView,
//            requires: ["Subscription.experimentProgress"] }
// Write the view in a file of its own (experiments.jsx; traces.jsx is an example of a live list with a
// detail view) over the public GraphQL API (api.request / api.subscribe), import it here, and add a
// browser test beside tests/web/test_console.py (test_console_traces.py is one).
// ============================================================================================
import { ExecutionsView } from "./executions.jsx";
import { PromptsView } from "./prompts.jsx";
import { DeploymentsView } from "./deployments.jsx";
import { TracesView } from "./traces.jsx";

export const SECTIONS = [
  { id: "executions", title: "Executions", key: "e", view: ExecutionsView, requires: ["Subscription.projectExecutions"] },
  { id: "prompts", title: "Prompts", key: "p", view: PromptsView, requires: [] },
  { id: "deployments", title: "Deployments", key: "d", view: DeploymentsView, requires: [] },
  { id: "traces", title: "Traces", key: "t", view: TracesView, requires: ["Subscription.projectTraces"] },
];

const ROOT_FIELDS = `{
  __schema {
    queryType { name fields { name } }
    mutationType { name fields { name } }
    subscriptionType { name fields { name } }
  }
}`;

/** The root fields the server offers, as a Set of "Type.field" (empty when introspection is off). */
export async function rootFields(api) {
  try {
    const { __schema: s } = await api.request(ROOT_FIELDS);
    const names = new Set();
    for (const [kind, type] of [["Query", s.queryType], ["Mutation", s.mutationType], ["Subscription", s.subscriptionType]]) {
      for (const f of (type && type.fields) || []) names.add(`${kind}.${f.name}`);
    }
    return names;
  } catch {
    return null; // introspection switched off: show every section whose requirements we cannot check
  }
}

/** The sections whose required fields the server has (all of them when that cannot be known). */
export function availableSections(fields) {
  return SECTIONS.filter((s) => !fields || s.requires.every((r) => fields.has(r)));
}
