"""Battery lifespan: semi-empirical ageing (rainflow cycle counting, calendar ageing), state of
health, and the marginal ageing costs the dispatch LP prices (``gridsync.dispatch.degradation``)."""
