"""The composition root: every component built once from Settings, one module per domain.

`components.build` assembles the domains (`store`, `mesh`, `conversation`, `channels`, `ops`) and
`components.start` / `components.stop` run them in order. `app.main` keeps the result on
`app.state.components`; routes never see it whole, only the one service each declares through
`app.channels.deps`.
"""
