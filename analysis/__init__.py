"""bsmscan's analysis package: the core (layer 1), the result maths and plots (layer 2), the
stages (layer 3), the pipeline (layer 4) and the commands (layer 5). See the README's layout."""
