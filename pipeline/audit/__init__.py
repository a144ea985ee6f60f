"""Human audit of a run: a local review app, an HTML export, and the decisions publishing uses.

``pipeline.audit.store`` reads the run folder and appends ``reviews.jsonl``; ``app`` serves it
(FastAPI, loopback only); ``export`` writes one self-contained report; ``overrides`` turns the
latest decisions into what ``pipeline.publish`` adds or drops. Importing this package stays
cheap: the web framework is only imported by ``app``.
"""
