"""RFM segments: per-channel recency/frequency/monetary quintile scores and named segments."""
