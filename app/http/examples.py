"""What GraphiQL opens on the first time: the README's quick tour as one document.

Each step is a named operation; GraphiQL's run button asks which one to run (Ctrl-Enter runs the
one under the cursor). tests/web/test_pages.py checks that every operation here is valid against
the schema, so the tour cannot drift from the API.
"""
from __future__ import annotations

TOUR = """\
# Welcome to Prompt Studio.
#
# The quick tour (as in the README). Run each step with the ▶ button, which asks
# which operation to run, or put the cursor inside one and press Ctrl-Enter.
#
#  1. SignUp creates your account (the first one becomes superuser) and returns
#     a token. Put it in the Headers pane below, for every following request:
#         { "Authorization": "Bearer <token>" }
#     Have an account already? Run LogIn instead.
#  2. CreateProject; copy project.id into the Variables pane as "projectId".
#  3. CreatePrompt (its version 1 comes with it); copy prompt.id as "promptId".
#  4. Run it: the execution is queued and a worker runs it with the built-in,
#     offline "echo" provider. Copy execution.id as "id".
#  5. Watch: a subscription over WebSocket (graphql-transport-ws). The Headers
#     pane is sent with it, as the connection_init payload.
#
# Watch every execution live in the console: /console
# The whole API: the Docs button (book icon, top left), or /schema.graphql.

mutation SignUp {
  signUp(input: {email: "ada@example.com", username: "ada", password: "correct horse battery"}) {
    token
    user { id username }
    userErrors { code field message }
  }
}

mutation LogIn {
  logIn(input: {login: "ada", password: "correct horse battery"}) {
    token
    userErrors { code field message }
  }
}

mutation CreateProject {
  createProject(input: {name: "Support bot", slug: "support-bot"}) {
    project { id slug }
    userErrors { code field message }
  }
}

mutation CreatePrompt($projectId: ID!) {
  createPrompt(input: {
    projectId: $projectId
    name: "greeting"
    content: {template: "Hello {{name}}, how can I help you with {{topic}}?"}
    commitMessage: "first draft"
  }) {
    prompt { id name }
    version { id number variables { name type required } }
    userErrors { code field message }
  }
}

mutation Run($promptId: ID!) {
  executePrompt(input: {promptId: $promptId, variables: {name: "Ada", topic: "billing"}}) {
    execution { id status }
    userErrors { code field message }
  }
}

subscription Watch($id: ID!) {
  executionUpdated(id: $id) {
    type
    sequence
    delta
    execution { status output usage { inputTokens outputTokens totalTokens } costUsd }
  }
}

query Explore {
  viewer { username }
  projects { nodes { slug prompts { nodes { name versionCount } } } }
}
"""

TOUR_VARIABLES = """\
{
  "projectId": "the project's id, from CreateProject",
  "promptId": "the prompt's id, from CreatePrompt",
  "id": "the execution's id, from Run"
}
"""


def tabs() -> list[dict[str, str]]:
    """GraphiQL's default tabs (used until the user has tabs of their own in the browser's storage)."""
    return [{"query": TOUR, "variables": TOUR_VARIABLES}]
