"""Test environment: offline, loopback-only ROS, one DDS domain per test run."""
import os
import random

import pytest

# A hub download attempt hangs ~45 s before failing; tests never need the network.
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
# Each pytest run gets its own domain so parallel runs on one machine never cross-talk.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes more than a few seconds (still run in CI)')
    config.addinivalue_line('markers', 'ros: needs rclpy')


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """Path of a tiny random-weight checkpoint (restorer + embedded CLIP tower)."""
    from tiny_model import make_tiny_checkpoint
    return make_tiny_checkpoint(tmp_path_factory.mktemp('ckpt') / 'tiny.safetensors')


@pytest.fixture(scope='module')
def one_torch_thread():
    """Tests share 2 cores with other jobs: one intra-op thread is much faster under load
    (two OpenMP threads stall each other whenever one is descheduled)."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
