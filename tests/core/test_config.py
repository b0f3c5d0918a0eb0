"""Config loading: the default and presets load; every bad input exits 2 with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main
from sim.core.config import DEFAULT_CONFIG, REPO_ROOT, ConfigError, load_config


def test_default_config_loads_the_t3_preset():
    cfg = load_config()
    gpu = cfg.hardware.gpu
    assert (gpu.compute_units, gpu.clock_ghz, gpu.hbm_gbps, gpu.l2_mib) == (80, 1.4, 1000.0, 16.0)
    assert (cfg.hardware.ring_link.bandwidth_gbps, cfg.hardware.ring_link.latency_ns) == (150.0, 500.0)
    assert cfg.hardware.tracker.entries == 256


def _write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD_HW = "hardware: " + str(REPO_ROOT / "configs" / "hardware" / "t3_gpu.yaml") + "\n"

BAD = {
    "missing_file": (None, "no such config file", ""),
    "syntax": ("seed: 1\nt3: {devices: 4\n", "YAML syntax error", "line "),
    "empty": ("", "the file is empty", ""),
    "unknown_key": (GOOD_HW + "t3: {devcies: 4}\n", "t3.devcies: unknown key", "expected one of"),
    "wrong_type": (GOOD_HW + "t3: {tokens: lots}\n", "t3.tokens: expected an integer", "'lots'"),
    "bool_for_int": (GOOD_HW + "seed: true\n", "seed: expected an integer", "True"),
    "negative_size": (GOOD_HW + "t3: {tile_m: -256}\n", "t3.tile_m: expected an integer > 0", "-256"),
    "zero_bandwidth": (
        "hardware:\n  name: x\n  gpu: {name: g, compute_units: 1, clock_ghz: 1, flops_per_cu_per_cycle: 1,"
        " hbm_gbps: 1, l2_mib: 1}\n  ring_link: {bandwidth_gbps: 0, latency_ns: 1}\n",
        "hardware.ring_link.bandwidth_gbps: expected a number > 0", "got 0"),
    "missing_key": ("seed: 1\n", "hardware: missing key", "mapping"),
    "not_a_mapping": ("- 1\n- 2\n", "(top level): expected a mapping", ""),
    "bad_probability": (GOOD_HW + "replay: {backpressure_prob: 1.5}\n", "replay.backpressure_prob",
                        "a probability in [0, 1)"),
    "entries_not_power_of_two": (
        "hardware:\n  name: x\n  gpu: {name: g, compute_units: 1, clock_ghz: 1, flops_per_cu_per_cycle: 1,"
        " hbm_gbps: 1, l2_mib: 1}\n  ring_link: {bandwidth_gbps: 1, latency_ns: 1}\n  tracker: {entries: 100}\n",
        "hardware.tracker.entries: expected a power of two >= 2", "100"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_a_clear_message(case, tmp_path, capsys):
    text, needle, needle2 = BAD[case]
    path = tmp_path / "absent.yaml" if text is None else _write(tmp_path, text)
    out = tmp_path / "out"
    rc = main(["run", "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith(f"llmarch: error: {path}: "), err
    assert needle in err and needle2 in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (out / "run.json").exists()


def test_bad_hardware_preset_names_the_preset_file(tmp_path, capsys):
    hw = _write(tmp_path, "name: x\ngpu: {name: g}\nring_link: {bandwidth_gbps: 1, latency_ns: 1}\n", "hw.yaml")
    cfg = _write(tmp_path, "hardware: hw.yaml\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert f"{hw}: gpu.compute_units: missing key" in err


def test_unplannable_workload_names_the_key(tmp_path, capsys):
    cfg = _write(tmp_path, GOOD_HW + "t3: {tokens: 1000}\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert f"{cfg}: t3.tokens: must be a multiple of devices x tile_m" in capsys.readouterr().err


def test_unwritable_output_is_a_user_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "--out", str(blocker / "sub")]) == 2
    assert "--out: cannot write to the output directory" in capsys.readouterr().err


def test_console_script_exit_status_and_no_traceback(tmp_path):
    bad = _write(tmp_path, "seed: [1\n")
    exe = Path(sys.executable).parent / "llmarch"
    proc = subprocess.run([str(exe), "run", "--config", str(bad)], capture_output=True, text=True,
                          env=dict(os.environ), cwd=tmp_path)
    assert proc.returncode == 2
    assert "YAML syntax error" in proc.stderr and "Traceback" not in proc.stderr


def test_config_error_message_format():
    e = ConfigError(DEFAULT_CONFIG, "t3.k", "expected an integer > 0, got 0")
    assert str(e) == f"{DEFAULT_CONFIG}: t3.k: expected an integer > 0, got 0"


def _block_fields():
    import dataclasses

    import sim.exec as ex

    for name, blk in ex.blocks().items():
        for f in dataclasses.fields(blk.params):
            yield name, f.name, f.metadata["range"]


@pytest.mark.parametrize("block,field,bounds", list(_block_fields()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_block_parameter_is_configurable_and_range_checked(block, field, bounds, tmp_path, capsys):
    """Block sections come from the blocks' parameter classes: any value out of range is a clean config error."""
    lo, hi = bounds
    hw = (REPO_ROOT / "configs" / "hardware" / "t3_gpu.yaml").read_text().split("\ntracker:")[0]
    for value in (hi + 1, lo - 1):
        hw_file = _write(tmp_path, hw + f"\n{block}:\n  {field}: {value}\n", "hw.yaml")
        cfg = _write(tmp_path, f"hardware: {hw_file}\n")
        for argv in (["run", "--config", str(cfg), "--out", str(tmp_path / "o")],
                     ["verilog", "--config", str(cfg), "--out", str(tmp_path / "v")]):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert f"{hw_file}: {block}.{field}: expected an integer in {lo}..{hi}, got {value}" in err, err
            assert "Traceback" not in err and err.count("\n") == 1


def test_block_cross_field_rules_are_config_errors(tmp_path, capsys):
    """The case that used to pass the config check and crash `llmarch verilog` with a traceback."""
    hw = (REPO_ROOT / "configs" / "hardware" / "t3_gpu.yaml").read_text().split("\ntracker:")[0]
    for section, needle in (("tracker:\n  entries: 131072", "tracker.entries: expected an integer in 2..65536"),
                            ("tracker:\n  entries: 100", "tracker.entries: expected a power of two >= 2, got 100")):
        hw_file = _write(tmp_path, hw + "\n" + section + "\n", "hw.yaml")
        cfg = _write(tmp_path, f"hardware: {hw_file}\n")
        assert main(["verilog", "--config", str(cfg), "--out", str(tmp_path / "v")]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err
    assert not (tmp_path / "v").exists() or not list((tmp_path / "v").iterdir())


def test_block_sections_default_and_override(tmp_path):
    import sim.exec as ex

    hw = (REPO_ROOT / "configs" / "hardware" / "t3_gpu.yaml").read_text().split("\ntracker:")[0]
    cfg = load_config(_write(tmp_path, "hardware:\n  " + hw.replace("\n", "\n  ") + "\n  tracker: {fifo_depth: 4}\n"))
    assert cfg.hardware.tracker.fifo_depth == 4 and cfg.hardware.tracker.entries == 256
    assert set(cfg.hardware.blocks) == set(ex.blocks())
    for name, blk in ex.blocks().items():
        if name != "tracker":
            assert cfg.hardware.blocks[name] == blk.default_params()
