"""Classifier training for bsmscan: JAX/Flax/Optax networks from the feature store.

Modules (import what you need; nothing heavy is imported here):

- :mod:`nn.data`        read the feature store into float32 numpy arrays (``read_feature_store``);
- :mod:`nn.split`       deterministic train/val/test split by a hash of (dataset, event);
- :mod:`nn.prepare`     weights, class balancing, resampling, parametrised inputs, scaler;
- :mod:`nn.model`       the Flax MLP; :mod:`nn.losses` BCE, focal and Asimov losses;
- :mod:`nn.optimizers`  optimisers and learning-rate schedules by name (runtime learning rate);
- :mod:`nn.trainer`     the jitted ``train_step``/epoch (compiled once per architecture), early stopping;
- :mod:`nn.train`       the stage (``python -m nn.train``); :mod:`nn.presets` named presets;
- :mod:`nn.artifact`    save/load (msgpack + JSON, no pickle) and scoring (``load_model``);
- :mod:`nn.search`      hyperparameter search (``python -m nn.search``) and the regularisation study;
- :mod:`nn.table`       CSV / Parquet / UCI tables (``python -m nn.train --table``, :mod:`nn.table_train`),
  :mod:`nn.score` scores a table, :mod:`nn.baseline` the XGBoost baseline, :mod:`nn.table_dask`
  and :mod:`nn.estimator` the dask-ml path;
- :mod:`nn.metrics`, :mod:`nn.weights`, :mod:`nn.scaler`, :mod:`nn.parametrise`.
"""
