"""rankbench's configs as package data: Hydra reads them from here when rankbench is installed."""
