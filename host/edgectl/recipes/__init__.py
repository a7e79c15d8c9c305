"""End-to-end recipes: train the reference models on a data set, build bundles, serve them on a board,
and score the agent's own records (`edgectl demo`, `edgectl example cmapss|secom`)."""
