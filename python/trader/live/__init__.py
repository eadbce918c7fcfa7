"""Live trading: the local Binance-compatible exchange, the recorder, brokers and the live loop."""
