"""Integrations of sidetrack with training frameworks and schedulers.

Each is a module of its own, imported only when asked for, since it imports its framework
(importing this package imports none of them):

- sidetrack.integrations.lightning:    SidetrackLogger, a PyTorch Lightning logger
                                       (`pip install lightning` or `pytorch-lightning`).
- sidetrack.integrations.transformers: SidetrackCallback, a Hugging Face Trainer callback
                                       (`pip install transformers`).
- sidetrack.integrations.keras:        SidetrackCallback, a Keras callback (Keras 3 or tf.keras:
                                       `pip install keras` or `pip install tensorflow`).
- sidetrack.integrations.dask:         attach(client) and SidetrackWorkerPlugin, so that the
                                       tasks of Dask workers on this node log into one run
                                       (Debian: python3-distributed).

A module whose framework is missing raises ImportError naming what to install. What each
records is described in its module's doc and in docs/integrations.md.
"""
