"""The nursing station: many devices in, a web board with alarm handling, history and the hospital's channels out.

    settings.py  the station's own TOML settings, users and roles, who may reach the board
    service.py   wiring: the ZeroMQ receiver thread, the event-loop pump, sinks, uvicorn
    board.py     live state per bed; folds device messages into the store and the alarms
    alarms.py    acknowledge / escalate / silence: a pure state machine with an injected clock
    store.py     SQLite history (WAL, 0600): readings downsampled, alerts, statuses, alarms, audit
    web.py       the Starlette app: board, server-sent events, ack, history, handover, login
    plot.py      a bed's history as inline SVG
    sinks.py     outbound channels, one queue and thread each
    assets/      the page's CSS and JavaScript (no build step, no CDN)
"""
