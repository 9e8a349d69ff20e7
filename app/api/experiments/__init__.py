"""Experiments in GraphQL: Dataset, DatasetItem, Evaluator, Experiment, ExperimentVariant, ExperimentRun and
their statistics; createDataset, addDatasetItems, createEvaluator, createExperiment, startExperiment,
cancelExperiment, completeExperiment, scoreRun; experimentProgress. It supplies Project.datasets,
Project.evaluators and Project.experiments (``resolvers``)."""
