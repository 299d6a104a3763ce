"""Layer 2 of the analysis: pure functions of hist histograms and summaries -- the scan maths,
the control views, the likelihood fits, the plots (:mod:`.plots`) and the report page (:mod:`.html`)."""
