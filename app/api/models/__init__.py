"""Models and providers in GraphQL: ModelConfig (prices), ProviderInfo, the model settings of a call;
Query.models and Query.providers; upsertModelConfig."""
