// Deployments: per environment, which versions of which prompts serve it, and the traffic split.
import { ErrorBox, Loading, SplitBar, href, useAsync, when } from "./ui.jsx";

const DEPLOYMENTS = `query Deployments($slug: String!) {
  project(slug: $slug) {
    settings { environments defaultEnvironment }
    prompts(first: 100, orderBy: {field: NAME, direction: ASC}) {
      nodes { id name deployments { environment trafficPercentage deployedAt version { number } } }
      pageInfo { hasNextPage }
    }
  }
}`;

export function DeploymentsView({ api, project }) {
  const q = useAsync(() => api.request(DEPLOYMENTS, { slug: project.slug }), [project.slug]);
  if (q.error) return <ErrorBox error={q.error} />;
  if (!q.data) return <Loading what="deployments" />;
  const { settings, prompts } = q.data.project;
  return (
    <section aria-labelledby="deployments-title">
      <div class="toolbar">
        <h2 id="deployments-title">Deployments</h2>
      </div>
      {prompts.pageInfo.hasNextPage ? <p class="muted">The first 100 prompts by name.</p> : null}
      <div class="environments">
        {settings.environments.map((env) => {
          const serving = prompts.nodes
            .map((p) => ({ prompt: p, live: p.deployments.filter((d) => d.environment === env) }))
            .filter((x) => x.live.length);
          return (
            <article class="card" aria-labelledby={`env-${env}`} data-environment={env}>
              <h3 id={`env-${env}`}>
                {env} {env === settings.defaultEnvironment ? <span class="tag">default</span> : null}
              </h3>
              {serving.length ? (
                <table class="grid">
                  <thead>
                    <tr><th scope="col">Prompt</th><th scope="col">Traffic split</th><th scope="col">Since</th></tr>
                  </thead>
                  <tbody>
                    {serving.map(({ prompt, live }) => (
                      <tr>
                        <td><a href={href("p", project.slug, "prompts", prompt.name)}>{prompt.name}</a></td>
                        <td>
                          <SplitBar deployments={live} link={(n) => href("p", project.slug, "prompts", prompt.name, "v", n)} />
                        </td>
                        <td>{when(live.map((d) => d.deployedAt).sort().pop())}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              ) : (
                <p class="muted">Nothing deployed.</p>
              )}
            </article>
          );
        })}
      </div>
    </section>
  );
}
