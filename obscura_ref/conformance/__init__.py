"""The conformance vector suite: generators that derive the vectors from the reference, and
replayers that check an implementation against them (``conformance/`` holds the data)."""
