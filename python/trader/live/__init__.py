"""Live trading and recording: the exchange's streams, the recorder, the live book and observations,
paper and real brokers, risk limits, the SQLite ledger, reconciliation and the live loop (README.md here
lists the files). The local exchange they rehearse against is trader.venue."""
