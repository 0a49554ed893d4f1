"""The training wing: what a training machine runs, never the robot.

``test/test_robot_imports.py`` starts the node and restores a frame in a fresh process and
checks that no module of this package (nor ``synth``, ``data``) was imported. Nothing is
imported here: take each name from its module.

  config      TrainConfig: a run's options from a YAML file of train_configs/, checked
  objective   Objective: restorer + prior encoder + losses as the one module DDP wraps
  schedule    the learning rate per step; the rest of an epoch a resumed run continues
  trainer     Trainer, train(): the loop, checkpoints, resume, validation (its device:
              devices.training_device, one GPU per torchrun rank)
  metrics     PSNR/SSIM on Y (video or full range) or RGB, confusion matrix, per-class tables
  baselines   the classical references every evaluation table has (dark channel, median/guided)
  evaluation  EvalReport, evaluate(), write_report(): one paired set against its references
  suite       real photos without ground truth, and the report joining several sets
  stress      numerical stress test and speckle check on photos (tools/ship_model.py runs it;
              ``python -m weather_restore_ros.training.stress [CHECKPOINT]``)
"""
