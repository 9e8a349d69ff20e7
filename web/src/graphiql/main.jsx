// GraphiQL as Prompt Studio serves it, built from npm packages into /static (no CDN).
//
// The page (app/http/templates/graphiql.html) computes the endpoint's URLs and calls
// PromptStudioGraphiQL.mount(element, config) with:
//   fetchURL          the page's own URL without its query string: POST /graphql
//   subscriptionUrl   the same URL as ws(s)://: subscriptions over graphql-transport-ws
//   tabs              the tour's examples [{query, variables}] (app/http/examples.py), shown the first
//                     time (GraphiQL keeps the user's tabs in localStorage afterwards)
//   query, variables, headers, operationName   from ?query=... (a shared link), opened in a tab
//   docs              open the documentation explorer
//
// The Headers pane goes with every request: as HTTP headers, and for subscriptions as the
// connection_init payload (createGraphiQLFetcher merges fetcherOpts.headers into connectionParams),
// where the server reads {"Authorization": "Bearer ..."}.
import { createRoot } from "react-dom/client";
import { GraphiQL } from "graphiql";
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./graphiql.css";

function stored(key) {
  try {
    return window.localStorage.getItem(`graphiql:${key}`) !== null;
  } catch {
    return false;
  }
}

export function mount(element, config) {
  const fetcher = createGraphiQLFetcher({
    url: config.fetchURL,
    subscriptionUrl: config.subscriptionUrl,
    headers: config.defaultHeaders || {},
  });
  const explorer = explorerPlugin();
  const props = {
    fetcher,
    plugins: [explorer],
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    inputValueDeprecation: true,
    defaultTabs: config.tabs && config.tabs.length ? config.tabs : undefined,
    defaultQuery: config.tabs && config.tabs.length ? config.tabs[0].query : undefined,
    defaultHeaders: config.newTabHeaders || undefined,
  };
  // GraphiQL fills the variables editor from its prop or its storage, not from defaultTabs: the
  // first time (nothing stored yet), hand it the tour's variables.
  if (props.defaultTabs && !config.query && !config.variables && !stored("tabState") && !stored("variables")) {
    props.variables = props.defaultTabs[0].variables;
  }
  if (config.query) props.query = config.query;
  if (config.variables) props.variables = config.variables;
  if (config.headers) props.headers = config.headers;
  if (config.operationName) props.operationName = config.operationName;
  if (config.docs) props.visiblePlugin = "Documentation Explorer";
  element.textContent = "";
  const root = createRoot(element);
  root.render(
    <GraphiQL {...props}>
      <GraphiQL.Logo>
        <a class="ps-logo" href={config.home || "/"} title="Prompt Studio: home">
          Prompt Studio
        </a>
        <a class="ps-logo-link" href={config.consoleURL || "/console"}>console</a>
      </GraphiQL.Logo>
    </GraphiQL>,
  );
  return root;
}
