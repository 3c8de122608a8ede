"""Review before splice: a decision per job (accept, reject, regenerate), kept in RUN/decisions.json, the job
cards that show each repair, and the local page that serves them (`semfi-batch review RUN`).

    decisions.py  the decisions store (atomic, locked) and what splice/run/report ask of it
    timecode.py   frame index -> SMPTE timecode at the source's rate (drop-frame for 29.97/59.94)
    cards.py      run folder -> one card per job, in source order; before/after frames and the spliced preview
    server.py     the page: standard-library HTTP server on 127.0.0.1, assets in static/, no CDN"""
