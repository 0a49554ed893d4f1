"""Training on the CPU with a tiny model and the tiny embedded CLIP: configs, loss terms, the
loop (loss goes down), exact resume, checkpoints the engine loads, SRD, CLIP fine-tuning,
logging without TensorBoard, the CLI, and two gloo processes under torchrun (slow)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from weather_restore_ros.checkpoint import SHIPPED_MODEL, CheckpointError, load_checkpoint
from weather_restore_ros.cli import main
from weather_restore_ros.data.build import build_dataset
from weather_restore_ros.devices import training_device
from weather_restore_ros.encoders import TINY_CLIP_CONFIG, make_tiny_clip
from weather_restore_ros.engine import RestorationEngine
from weather_restore_ros.model.blocks import shuffle_to_bilinear
from weather_restore_ros.model.config import get_config
from weather_restore_ros.model.restorer import WeatherRestorer
from weather_restore_ros.synth.samples import sample_images
from weather_restore_ros.training.config import TrainConfig
from weather_restore_ros.training.objective import Objective
from weather_restore_ros.training.trainer import ScalarLog, Trainer

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIGS = REPO / 'train_configs'   # the training recipes (not installed with the package)


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """A folder of two small clean photos (96x72 PNGs)."""
    root = tmp_path_factory.mktemp('photos')
    for name, img in sample_images(['rocket', 'chelsea']):
        small = cv2.resize(img, (96, 72), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / f'{name}.png'), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    return root


def tiny_config(out_dir, photos, **overrides) -> dict:
    """A run of the tiny restorer + tiny embedded CLIP on 32 px synthetic crops (8 samples,
    batch 4: two steps per epoch)."""
    cfg = dict(
        out_dir=str(out_dir), seed=0, model={'name': 'tiny'}, clip={'embedded': 'tiny'},
        data={'train': {'type': 'synthetic', 'clean': [str(photos)], 'crop_size': 32,
                        'length': 8, 'classes': ['fog', 'rain']}},
        steps=6, batch_size=4, lr=5e-3, clip_lr=1e-3, warmup_steps=0, num_workers=0,
        amp=True, loss={'recon': 1.0, 'ssim': 0.2, 'cls': 0.1}, log_every=1, val_every=1000,
        ckpt_every=1000, val_images=4)
    cfg.update(overrides)
    return cfg


def metrics(out_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(out_dir) / 'metrics.jsonl').read_text().splitlines()]


def losses(out_dir, key='loss/total') -> dict[int, float]:
    return {r['step']: r[key] for r in metrics(out_dir) if key in r}


def state_of(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same_state(a, b, atol=0.0) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=atol,
                                                       rtol=0) for k in a)


# ------------------------------------------------------------------------------- config
def test_config_from_yaml_rejects_unknown_options_and_coerces_numbers(tmp_path, photos):
    path = tmp_path / 'cfg.yaml'

    def load(**changes):
        d = tiny_config(tmp_path / 'run', photos)
        d.update(changes)
        path.write_text(yaml.safe_dump(d))
        return TrainConfig.from_yaml(path)

    with pytest.raises(ValueError, match=r"cfg.yaml: unknown training option\(s\) \['lrr'\]"):
        load(lrr=0.1)
    with pytest.raises(ValueError, match=r"unknown loss option\(s\) \['ssmi'\]"):
        load(loss={'recon': 1.0, 'ssmi': 0.2})
    with pytest.raises(ValueError, match=r"unknown clip option\(s\) \['trainble'\]"):
        load(clip={'embedded': 'tiny', 'trainble': True})
    with pytest.raises(ValueError, match='set by the trainer'):
        load(model={'name': 'tiny', 'clip_dim': 64})
    with pytest.raises(ValueError, match='lr must be a number'):
        load(lr='fast')
    with pytest.raises(ValueError, match='steps must be a whole number'):
        load(steps=2.5)
    with pytest.raises(ValueError, match='batch_size must be >= 1'):
        load(batch_size=0)
    cfg = load(lr='1e-3', steps=10.0)          # YAML 1.1 reads 1e-3 as a string
    assert cfg.lr == 1e-3 and isinstance(cfg.steps, int) and cfg.class_names[0] == 'clear'
    # Command-line overrides go through the same checks; None means "not given".
    cfg = TrainConfig.from_yaml(path, steps=3, batch_size=None)
    assert cfg.steps == 3 and cfg.batch_size == 4
    # The shipped configs stay valid.
    names = sorted(str(p.relative_to(TRAIN_CONFIGS)) for p in TRAIN_CONFIGS.rglob('*.yaml'))
    assert {'weather_small.yaml', 'allweather_base.yaml', 'finetune_small_fleet.yaml'} <= set(names)
    for name in names:
        TrainConfig.from_yaml(TRAIN_CONFIGS / name)


def test_the_shipped_model_recipe_matches_the_shipped_checkpoint():
    """train_configs/weather_small.yaml (from scratch) and weather_small_stage2..5.yaml, each
    from the one before's output (stages 3 and 5: the weather head alone; stage 4: the restorer
    again, on light weather too), describe the network, the encoder and the last stage of the
    shipped checkpoint; the fleet fine-tune describes the same network."""
    names = ['weather_small'] + [f'weather_small_stage{k}' for k in range(2, 6)]
    stages = [TrainConfig.from_yaml(TRAIN_CONFIGS / f'{name}.yaml') for name in names]
    stage1, last = stages[0], stages[-1]
    fleet = TrainConfig.from_yaml(TRAIN_CONFIGS / 'finetune_small_fleet.yaml')
    assert not stage1.init_from and fleet.init_from == 'shipped'
    for before, after in zip(stages, stages[1:]):
        assert after.init_from == f'{before.out_dir}/last.safetensors'
    assert [bool(s.train_only) for s in stages] == [False, False, True, False, True]
    assert all(s.train_only == ['classifier'] for s in stages if s.train_only)
    # Stage 5 is stage 3 (the head alone) on stage 4's restorer: the same run, another start.
    start = {'out_dir': None, 'init_from': None}
    assert {**vars(stages[4]), **start} == {**vars(stages[2]), **start}
    # Stage 4 draws every weather from severity 0 on; the others at synth's default.
    assert [s.data['train'].get('severity_range') for s in stages] == [None] * 3 + [
        [0.0, 1.0], None]
    header = (TRAIN_CONFIGS / 'weather_small.yaml').read_text().split('\nout_dir')[0]
    # Its header lists every command, every config by its path.
    for name in names:
        assert f'train_configs/{name}.yaml' in header
    shipped = load_checkpoint(SHIPPED_MODEL)
    assert shipped.training['steps'] == last.steps
    assert shipped.training['data'] == last.data and shipped.training['losses'] == last.loss
    assert shipped.training['init_from'] == last.init_from
    for cfg in (*stages, fleet):
        net = get_config(cfg.model['name'], **{k: v for k, v in cfg.model.items() if k != 'name'})
        for field in ('mask_head', 'gate_bound', 'block_norm', 'widths', 'channel_attention'):
            assert getattr(shipped.config, field) == getattr(net, field), field
        # Stage 1 upsamples by pixel shuffle; stage 2 converts it to bilinear (init_from
        # averages the sub-pixel filters), the later stages keep it.
        want = 'shuffle' if cfg is stage1 else shipped.config.upsample
        assert net.upsample == want
        assert cfg.clip == {'timm': 'efficientnet_lite0', 'image_size': 160}
    assert shipped.clip.kind == 'timm' and shipped.clip.model_name == 'timm:efficientnet_lite0'
    assert shipped.clip.options == {'image_size': 160}


# ------------------------------------------------------------------------------- loss terms
def test_objective_computes_only_weighted_terms_recon_always():
    torch.manual_seed(0)
    clip = make_tiny_clip()
    cfg = get_config('tiny', clip_dim=clip.embed_dim, srd_dim=clip.token_dim)
    model = WeatherRestorer(cfg)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    label = torch.tensor([1, 3])

    total, terms = Objective(model, clip, None, {})(x, y, label)
    assert set(terms) == {'recon'} and torch.allclose(total, terms['recon'])
    total, terms = Objective(model, clip, None, {'recon': 0.5, 'ssim': 0.0, 'cls': 0.2})(
        x, y, label)
    assert set(terms) == {'recon', 'cls'}
    assert torch.allclose(total, 0.5 * terms['recon'] + 0.2 * terms['cls'])
    total, terms = Objective(model, clip, None, {'psnr': 0.1, 'gate': 0.5})(x, y, label)
    assert set(terms) == {'recon', 'psnr', 'gate'} and float(terms['gate']) > 0
    assert torch.allclose(total, terms['recon'] + 0.1 * terms['psnr'] + 0.5 * terms['gate'])
    total, terms = Objective(model, clip, clip, {'ssim': 1.0, 'srd': 2.0})(x, y, label)
    assert set(terms) == {'recon', 'ssim', 'srd'} and float(terms['srd']) > 0
    assert torch.allclose(total, terms['recon'] + terms['ssim'] + 2.0 * terms['srd'])
    with pytest.raises(ValueError, match='teacher'):
        Objective(model, clip, None, {'srd': 0.1})


# ------------------------------------------------------------------------------- the loop
@pytest.fixture(scope='module')
def trained(tmp_path_factory, photos):
    """30 steps with a 3-sample held-out validation set; the Trainer stays in memory."""
    out = tmp_path_factory.mktemp('trained')
    cfg = TrainConfig(**tiny_config(
        out, photos, steps=30, ckpt_every=10, val_every=15,
        data={'train': {'type': 'synthetic', 'clean': [str(photos)], 'crop_size': 32,
                        'length': 8, 'classes': ['fog', 'rain']},
              'val': {'type': 'synthetic', 'holdout': True, 'length': 3}}))
    trainer = Trainer(cfg, device='cpu')
    summary = trainer.train(progress=False)
    trainer.close()
    return trainer, summary


def test_a_few_training_steps_reduce_the_loss(trained):
    trainer, summary = trained
    assert summary['steps'] == 30 and trainer.step == 30
    assert not trainer.amp and not trainer.scaler.is_enabled()   # amp: true is ignored on CPU
    total, recon = losses(trainer.out), losses(trainer.out, 'loss/recon')
    assert sorted(total) == list(range(1, 31))                   # log_every 1: every step
    first = np.mean([total[s] for s in range(1, 6)])
    last = np.mean([total[s] for s in range(21, 31)])
    assert last < 0.75 * first, (first, last)
    assert np.mean([recon[s] for s in range(21, 31)]) < np.mean([recon[s] for s in range(1, 6)])
    # The learning rate follows the schedule (no warm-up: cosine from lr down).
    lrs = [r['lr'] for r in metrics(trainer.out) if 'lr' in r]
    assert lrs[0] < 5e-3 and lrs == sorted(lrs, reverse=True)


def test_validation_summary_and_metrics_file(trained):
    trainer, summary = trained
    # Validation ran at steps 15 and 30 on the held-out frames; its numbers are in the summary,
    # the log and the checkpoint's training record.
    val = [r for r in metrics(trainer.out) if 'val/psnr' in r]
    assert [r['step'] for r in val] == [15, 30]
    assert summary['val_psnr'] == val[-1]['val/psnr'] and 0 <= summary['val_accuracy'] <= 1
    # Per weather class, the model's gain over its input (clear frames have no PSNR).
    labels = [trainer.cfg.class_names[int(s['label'])] for s in trainer.val_set]
    weather = [c for c in labels if c != 'clear']
    gains = {k.split('/', 1)[1]: v for k, v in summary.items() if k.startswith('val_psnr_gain/')}
    assert weather and set(gains) == set(weather)
    assert all(val[-1][f'val/psnr_gain/{c}'] == gains[c] for c in gains)
    mean_gain = sum(gains[c] for c in weather) / len(weather)   # per sample, over the classes
    assert summary['val_psnr'] - summary['val_input_psnr'] == pytest.approx(mean_gain, abs=2e-3)
    ckpt = load_checkpoint(trainer.out / 'last.safetensors')
    assert ckpt.training['steps'] == 30 and ckpt.training['val_psnr'] == summary['val_psnr']
    assert json.loads((trainer.out / 'train_config.json').read_text())['steps'] == 30
    # tensorboard is not installed in this environment (or else its events are beside)
    assert (trainer.out / 'metrics.jsonl').is_file()


def test_metrics_jsonl_without_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)   # import fails
    log = ScalarLog(tmp_path)
    assert log._tb is None
    log.write(1, {'loss/total': 0.5})
    log.write(2, {'loss/total': 0.25, 'lr': 1e-3})
    log.close()
    rows = metrics(tmp_path)
    assert [r['step'] for r in rows] == [1, 2] and rows[1]['lr'] == 1e-3
    assert not (tmp_path / 'tensorboard').exists()


def test_trained_checkpoint_in_the_engine_gives_the_in_memory_output(trained):
    trainer, _ = trained
    engine = RestorationEngine.from_checkpoint(str(trainer.out / 'last.safetensors'),
                                               device='cpu', warmup=False)
    rgb = np.ascontiguousarray(sample_images(['china'])[0][1][100:148, 200:264])
    result = engine.restore(rgb)

    trainer.model.eval()
    trainer.clip.eval()
    with torch.no_grad():
        x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
        out = trainer.model(x, trainer.clip.encode(x).embedding)
    expected = (out.image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(result.image.astype(int) - expected.astype(int)).max() <= 1
    assert np.abs(result.image.astype(int) - rgb.astype(int)).max() > 0   # it was trained
    probs = out.logits.softmax(-1)[0].numpy()
    assert np.allclose([result.scores[c] for c in engine.class_names], probs, atol=1e-5)


def test_holdout_validation_spec_is_the_eval_holdout_set():
    from weather_restore_ros.data.holdout import HOLDOUT_CROP, holdout_dataset
    names = ('clear', 'rain', 'snow', 'fog', 'raindrop')
    ds = build_dataset({'type': 'synthetic', 'holdout': True, 'length': 2}, names, seed=0,
                       train=False)
    ref = holdout_dataset(names, seed=1234, length=2)
    assert len(ds) == 2 and tuple(ds[0]['input'].shape[1:]) == HOLDOUT_CROP
    assert torch.equal(ds[1]['input'], ref[1]['input']) and ds[1]['label'] == ref[1]['label']


# ------------------------------------------------------------------------------- resume
@pytest.mark.parametrize('ema_decay', [0.0, 0.8])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, photos, ema_decay):
    # 8 samples / batch 4 = 2 steps per epoch: stopping at step 5 stops mid-epoch, so the
    # resumed run must also skip the batch it already used.
    full = Trainer(TrainConfig(**tiny_config(tmp_path / 'full', photos, steps=9,
                                             ema_decay=ema_decay)), device='cpu')
    full.train(progress=False)

    cfg = TrainConfig(**tiny_config(tmp_path / 'parts', photos, steps=9, ckpt_every=2,
                                    ema_decay=ema_decay))
    first = Trainer(cfg, device='cpu')
    first.train(max_steps=5, progress=False)       # checkpoints at 2, 4 and 5 (the end)
    weights_at_5 = state_of(first.model)

    second = Trainer(cfg, device='cpu')
    assert not same_state(state_of(second.model), weights_at_5)
    second.resume()
    assert second.step == 5 and same_state(state_of(second.model), weights_at_5)
    assert second.sched.last_epoch == 5
    assert all(int(s['step']) == 5 for s in second.opt.state_dict()['state'].values())
    summary = second.train(progress=False)
    assert summary['steps'] == 9

    parts, ref = losses(tmp_path / 'parts'), losses(tmp_path / 'full')
    assert sorted(parts) == list(range(1, 10))     # every step logged once, numbering continues
    for step in range(1, 10):
        assert parts[step] == pytest.approx(ref[step], rel=1e-5, abs=1e-6), step
    assert same_state(state_of(second.model), state_of(full.model), atol=1e-6)
    assert same_state(state_of(second.inference_model), state_of(full.inference_model),
                      atol=1e-6)


def test_ema_weights_are_validated_and_shipped_raw_ones_resumed(tmp_path, photos):
    cfg = TrainConfig(**tiny_config(tmp_path / 'ema', photos, steps=4, ema_decay=0.5,
                                    val_every=4,
                                    data={**tiny_config(tmp_path, photos)['data'],
                                          'val': {'type': 'synthetic', 'holdout': True,
                                                  'length': 2}}))
    trainer = Trainer(cfg, device='cpu')
    start = state_of(trainer.model)
    snapshots = []
    for _ in range(4):
        trainer.train(max_steps=1, progress=False)
        snapshots.append(state_of(trainer.model))
    # EMA with decay 0.5 after 4 steps: the first step is copied, then halved each step.
    key = 'head.0.weight'
    expected = snapshots[0][key]
    for snap in snapshots[1:]:
        expected = 0.5 * expected + 0.5 * snap[key]
    assert torch.allclose(trainer.inference_model.state_dict()[key], expected, atol=1e-6)
    assert not torch.allclose(trainer.inference_model.state_dict()[key], snapshots[-1][key])
    assert not same_state(start, snapshots[-1])
    # The inference checkpoint holds the average, train_state.pt the raw weights.
    ckpt = load_checkpoint(trainer.out / 'last.safetensors')
    assert torch.allclose(ckpt.restorer_state[key], expected, atol=1e-6)
    state = torch.load(trainer.out / 'train_state.pt', weights_only=True)
    assert torch.equal(state['model'][key], snapshots[-1][key]) and state['ema_n_averaged'] == 4
    # Resuming with a different ema setting is refused, not silently mixed.
    with pytest.raises(CheckpointError, match='ema_decay'):
        Trainer(TrainConfig(**{**tiny_config(tmp_path / 'ema', photos), 'ema_decay': 0.0}),
                device='cpu').resume()


def test_resume_without_a_checkpoint_says_so(tmp_path, photos):
    trainer = Trainer(TrainConfig(**tiny_config(tmp_path / 'empty', photos)), device='cpu')
    with pytest.raises(FileNotFoundError, match='nothing to resume'):
        trainer.resume()


def test_cli_train_in_chunks_with_a_loader_worker(tmp_path, photos, capsys):
    # The first chunk ends mid-epoch; the resumed one reads the rest of that epoch through the
    # skipping loader with one (spawned) worker process.
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path / 'run', photos, steps=2,
                                              num_workers=1)))
    assert main(['train', str(cfg), '--max-steps', '1', '--num-workers', '0', '--no-progress',
                 '--device', 'cpu']) == 0
    assert json.loads(capsys.readouterr().out.split('\ncheckpoint:')[0])['steps'] == 1
    assert main(['train', str(cfg), '--resume', '--no-progress', '--device', 'cpu']) == 0
    assert sorted(losses(tmp_path / 'run')) == [1, 2]
    assert load_checkpoint(tmp_path / 'run' / 'last.safetensors').training['steps'] == 2
    assert not list((tmp_path / 'run').glob('.*tmp*'))   # no temporary files left behind


def test_block_norm_model_trains(tmp_path, photos):
    cfg = TrainConfig(**tiny_config(tmp_path, photos, steps=30,
                                    model={'name': 'tiny', 'block_norm': True}))
    trainer = Trainer(cfg, device='cpu')
    trainer.train(progress=False)
    trainer.close()
    total = losses(tmp_path)
    assert np.mean([total[s] for s in range(21, 31)]) < 0.75 * np.mean(
        [total[s] for s in range(1, 6)])
    assert load_checkpoint(tmp_path / 'last.safetensors').config.block_norm


def test_train_only_the_weather_head_leaves_restoration_bit_exact(tmp_path, photos):
    cfg = TrainConfig(**tiny_config(tmp_path, photos, steps=4, train_only=['classifier'],
                                    loss={'recon': 0.0, 'cls': 1.0}))
    trainer = Trainer(cfg, device='cpu')
    before = state_of(trainer.model)
    trainer.train(progress=False)
    trainer.close()
    after = state_of(trainer.model)
    changed = {k.split('.')[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {'classifier'}
    with pytest.raises(ValueError, match=r"train_only: \['decoder'\] are not parts.*classifier"):
        Trainer(TrainConfig(**tiny_config(tmp_path, photos, train_only=['decoder'])), device='cpu')
    with pytest.raises(ValueError, match='train_only must be a list of names'):
        TrainConfig(**tiny_config(tmp_path, photos, train_only='classifier'))


def test_training_device_gives_each_torchrun_process_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setenv('LOCAL_RANK', '1')
    # A bare 'cuda' (torch.cuda.set_device rejects it) and the default become cuda:LOCAL_RANK.
    assert training_device('cuda') == training_device(None) == torch.device('cuda', 1)
    assert training_device('cuda:0') == torch.device('cuda', 0)
    assert training_device('cpu') == torch.device('cpu')


def test_cli_train_rejects_a_bad_device_or_config_without_a_traceback(tmp_path, photos, capsys):
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path / 'run', photos)))
    if not torch.cuda.is_available():
        assert main(['train', str(cfg), '--device', 'cuda']) == 2
        assert 'CUDA is not available' in capsys.readouterr().err
    assert main(['train', str(cfg), '--device', 'gpu']) == 2
    assert 'gpu' in capsys.readouterr().err
    cfg.write_text(yaml.safe_dump({**tiny_config(tmp_path / 'run', photos), 'lr_max': 1}))
    assert main(['train', str(cfg)]) == 2
    assert "unknown training option(s) ['lr_max']" in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


# ------------------------------------------------------------------------------- CLIP
@pytest.mark.parametrize('trainable', [False, True])
def test_srd_runs_and_clip_trainable_flag(tmp_path, photos, trainable):
    cfg = TrainConfig(**tiny_config(
        tmp_path, photos, steps=2, clip={'embedded': 'tiny', 'trainable': trainable},
        loss={'recon': 1.0, 'srd': 0.5, 'srd_temperature': 0.2}))
    trainer = Trainer(cfg, device='cpu')
    assert trainer.model.cfg.has_srd_head and trainer.model.cfg.srd_dim == TINY_CLIP_CONFIG[
        'vision_cfg']['width']
    assert (trainer.teacher is trainer.clip) is (not trainable)
    clip_before = state_of(trainer.clip)
    teacher_before = state_of(trainer.teacher)
    trainer.train(progress=False)
    srd = losses(tmp_path, 'loss/srd')
    assert sorted(srd) == [1, 2] and all(v > 0 for v in srd.values())
    assert same_state(state_of(trainer.teacher), teacher_before)       # the teacher is frozen
    assert same_state(state_of(trainer.clip), clip_before) is (not trainable)
    # The checkpoint carries the tower as trained.
    ckpt = load_checkpoint(tmp_path / 'last.safetensors')
    visual = {k[len('visual.'):]: v for k, v in ckpt.clip_state.items()}
    assert same_state(visual, state_of(trainer.clip.visual))


def test_fine_tuned_named_clip_is_stored_in_the_checkpoint(tmp_path, photos):
    """A CLIP loaded by name (here a JSON architecture with random weights) that is fine-tuned
    cannot be reloaded by name: the checkpoint embeds its image tower."""
    arch = tmp_path / 'tiny_clip.json'
    arch.write_text(json.dumps(TINY_CLIP_CONFIG))
    cfg = TrainConfig(**tiny_config(tmp_path / 'run', photos, steps=1,
                                    clip={'model_name': str(arch), 'pretrained': None,
                                          'trainable': True}))
    trainer = Trainer(cfg, device='cpu')
    trainer.train(progress=False)
    ckpt = load_checkpoint(tmp_path / 'run' / 'last.safetensors')
    assert ckpt.clip.embedded and ckpt.clip.model_name == str(arch)
    assert ckpt.clip_state and all(k.startswith('visual.') for k in ckpt.clip_state)
    engine = RestorationEngine.from_checkpoint(str(tmp_path / 'run' / 'last.safetensors'),
                                               device='cpu', warmup=False)
    assert same_state(state_of(engine.clip.visual), state_of(trainer.clip.visual))


# ------------------------------------------------------------------------------- torchrun
@pytest.mark.slow
def test_two_gloo_processes_under_torchrun(tmp_path, photos):
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path / 'run', photos, steps=4,
                                              ckpt_every=2)))
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1',
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(Path(__file__).parent / 'ddp_worker.py'), str(cfg), str(tmp_path / 'ranks')]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ranks = [json.loads((tmp_path / 'ranks' / f'{r}.json').read_text()) for r in (0, 1)]
    assert [r['world'] for r in ranks] == [2, 2] and [r['rank'] for r in ranks] == [0, 1]
    assert all(r['steps'] == 4 for r in ranks)
    # DistributedSampler: per epoch the two ranks read disjoint halves of the 8 samples
    # (batch 4 per rank = one step per epoch, 4 epochs).
    for epoch in range(4):
        a, b = (set(r['indices'][epoch * 4:(epoch + 1) * 4]) for r in ranks)
        assert len(a) == len(b) == 4 and not a & b
    assert ranks[0]['weights'] == pytest.approx(ranks[1]['weights'], abs=1e-6)  # kept in sync
    # Rank 0 alone logged and wrote the checkpoint; the logged loss is the mean over ranks.
    assert sorted(losses(tmp_path / 'run')) == [1, 2, 3, 4]
    ckpt = load_checkpoint(tmp_path / 'run' / 'last.safetensors')
    assert ckpt.training['steps'] == 4 and ckpt.training['batch_size'] == 8
    engine = RestorationEngine.from_checkpoint(str(tmp_path / 'run' / 'last.safetensors'),
                                               device='cpu', warmup=False)
    assert engine.restore(np.full((32, 40, 3), 128, np.uint8)).image.shape == (32, 40, 3)


def test_non_finite_steps_are_skipped_then_a_diverging_run_stops(tmp_path, photos, monkeypatch):
    """A NaN batch must not reach the weights; a run that keeps producing them stops loudly."""
    import weather_restore_ros.training.trainer as T
    trainer = T.Trainer(TrainConfig(**tiny_config(tmp_path / 'run', photos, steps=3)))
    real = trainer.objective.forward
    calls = {'n': 0}

    def nan_on_first_call(x, y, label):
        total, terms = real(x, y, label)
        calls['n'] += 1
        return (total * float('nan') if calls['n'] == 1 else total), terms

    monkeypatch.setattr(trainer.objective, 'forward', nan_on_first_call)
    before = state_of(trainer.model)
    trainer.train(progress=False)
    assert trainer.nonfinite_steps == 1 and trainer.step == 3
    assert trainer.summary()['nonfinite_steps'] == 1            # in every checkpoint's JSON
    assert [r['nonfinite_steps'] for r in metrics(tmp_path / 'run') if 'lr' in r] == [1, 1, 1]
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())
    assert not same_state(before, state_of(trainer.model))  # the finite steps did train

    monkeypatch.setattr(trainer.objective, 'forward',
                        lambda x, y, label: (real(x, y, label)[0] * float('nan'), {}))
    monkeypatch.setattr(T, 'MAX_NONFINITE_STEPS', 2)
    trainer.cfg.steps = 10
    with pytest.raises(FloatingPointError, match='diverging'):
        trainer.train(progress=False)
    trainer.close()


def test_init_from_a_checkpoint_fine_tunes_it(tmp_path, photos, trained):
    source, _ = trained
    ckpt_path = source.out / 'last.safetensors'
    cfg = TrainConfig(**tiny_config(tmp_path / 'ft', photos, steps=2, init_from=str(ckpt_path)))
    tuned = Trainer(cfg, device='cpu')
    # Starts from the checkpoint's restorer and its embedded tower, not from the seed.
    assert same_state(state_of(tuned.model), load_checkpoint(ckpt_path).restorer_state)
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(tuned.clip.encode(x).embedding, source.clip.encode(x).embedding)
    tuned.train(progress=False)
    assert load_checkpoint(tuned.out / 'last.safetensors').training['init_from'] == str(ckpt_path)
    # A mask head may be added (it starts open), trained by the gate loss.
    cfg = TrainConfig(**tiny_config(tmp_path / 'mask', photos, steps=2, init_from=str(ckpt_path),
                                    model={'name': 'tiny', 'mask_head': True},
                                    loss={'recon': 1.0, 'gate': 0.5}))
    masked = Trainer(cfg, device='cpu')
    state = state_of(masked.model)
    assert same_state({k: v for k, v in state.items() if not k.startswith('mask_head.')},
                      load_checkpoint(ckpt_path).restorer_state)
    masked.train(progress=False)
    assert 'loss/gate' in metrics(masked.out)[-1]
    assert not torch.equal(state_of(masked.model)['mask_head.weight'], state['mask_head.weight'])
    # A detail gain may be added too (it starts at 1: the network as it was).
    cfg = TrainConfig(**tiny_config(tmp_path / 'gain', photos, steps=1, init_from=str(ckpt_path),
                                    model={'name': 'tiny', 'detail_gain': True}))
    state = state_of(Trainer(cfg, device='cpu').model)
    assert same_state({k: v for k, v in state.items() if not k.startswith('detail_gain.')},
                      load_checkpoint(ckpt_path).restorer_state)
    # A pixel-shuffle checkpoint into a bilinear-upsample network: the sub-pixel filters are
    # averaged, everything else is taken as it is.
    cfg = TrainConfig(**tiny_config(tmp_path / 'bil', photos, steps=1, init_from=str(ckpt_path),
                                    model={'name': 'tiny', 'upsample': 'bilinear'}))
    converted = state_of(Trainer(cfg, device='cpu').model)
    source_state = load_checkpoint(ckpt_path).restorer_state
    assert same_state(converted, shuffle_to_bilinear(source_state))
    assert converted['up.0.0.weight'].shape[0] * 4 == source_state['up.0.0.weight'].shape[0]
    # A network that does not fit, or another CLIP, is refused with the reason.
    with pytest.raises(CheckpointError, match='does not fit'):
        Trainer(TrainConfig(**tiny_config(tmp_path / 'bad', photos, init_from=str(ckpt_path),
                                          model={'name': 'tiny', 'widths': [8, 16, 32]})),
                device='cpu')
    with pytest.raises(CheckpointError, match='CLIP'):
        Trainer(TrainConfig(**tiny_config(tmp_path / 'bad2', photos, init_from='shipped')),
                device='cpu')


def test_fleet_fine_tuning_config_starts_from_the_shipped_model(tmp_path, photos):
    cfg = TrainConfig.from_yaml(TRAIN_CONFIGS / 'finetune_small_fleet.yaml',
                                out_dir=str(tmp_path / 'ft'), steps=1, batch_size=2,
                                num_workers=0)
    cfg.data = {'train': {**cfg.data['train'], 'clean': [str(photos)], 'crop_size': 64,
                          'length': 2}}
    trainer = Trainer(cfg, device='cpu')
    assert same_state(state_of(trainer.model), load_checkpoint().restorer_state)
    trainer.train(progress=False)
    assert load_checkpoint(trainer.out / 'last.safetensors').training['init_from'] == 'shipped'
