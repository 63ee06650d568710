"""A1111 1.10's schedule types against reference values computed with k-diffusion 0.1.1's own
functions (`get_sigmas_karras`, `…_exponential`, `…_polyexponential`, `DiscreteSchedule`) and
A1111's `sd_schedulers.py` formulas, on SD 1.5's noise schedule (sigma 0.029167 … 14.614641)."""
import json

import pytest
import torch

from studio.checkpoints.single_file import SHIPPED_CONFIGS
from studio.generation import schedules
from studio.generation.schedules import SCHEDULES, ModelSigmas, sigmas_for

SD15 = ModelSigmas.from_config(json.loads((SHIPPED_CONFIGS / "sd15" / "scheduler" / "scheduler_config.json").read_text()))
LOW, HIGH = 0.0292, 14.6146

RANGE_REFERENCES = {  # n = 5 between LOW and HIGH
    "karras": (schedules.karras(5, LOW, HIGH), [14.614602, 4.797174, 1.274516, 0.248104, 0.0292, 0.0]),
    "exponential": (schedules.exponential(5, LOW, HIGH), [14.614602, 3.08984, 0.653258, 0.138113, 0.0292, 0.0]),
    "polyexponential": (schedules.polyexponential(5, LOW, HIGH), [14.614602, 3.08984, 0.653258, 0.138113, 0.0292, 0.0]),
    "polyexponential rho 2": (schedules.polyexponential(5, LOW, HIGH, rho=2.0),
                              [14.614602, 0.96338, 0.138113, 0.043062, 0.0292, 0.0]),
    "kl_optimal": (schedules.kl_optimal(5, LOW, HIGH), [14.614607, 2.632939, 1.294802, 0.711656, 0.335667, 0.0292]),
    "beta": (schedules.beta(5, LOW, HIGH), [14.6146, 12.052231, 7.3219, 2.591569, 0.0292, 0.0]),
    "align_your_steps sd15 n5": (schedules.align_your_steps(5), [14.615, 3.226936, 1.396, 0.510047, 0.029, 0.0]),
    "align_your_steps sdxl n7": (schedules.align_your_steps(7, sdxl=True),
                                 [14.615, 4.478117, 1.855046, 0.862, 0.431142, 0.183585, 0.029, 0.0]),
}


@pytest.mark.parametrize("name", list(RANGE_REFERENCES))
def test_range_schedules_match_k_diffusion_and_a1111(name):
    got, reference = RANGE_REFERENCES[name]
    assert torch.allclose(got, torch.tensor(reference, dtype=torch.float64), rtol=2e-5, atol=2e-6), (got, reference)


MODEL_REFERENCES = {  # n = 4 on SD 1.5's own 1000 sigmas
    "Uniform": [14.61464, 2.91831, 0.93236, 0.02917, 0.0],
    "Automatic": [14.61464, 2.91831, 0.93236, 0.02917, 0.0],  # k-diffusion's get_sigmas
    "SGM Uniform": [14.61464, 4.08608, 1.61558, 0.69515, 0.0],
    "Simple": [14.61464, 4.08173, 1.61289, 0.6932, 0.0],
    "Normal": [14.61464, 2.91831, 0.93236, 0.02917, 0.0],
    "DDIM": [4.1167, 1.62369, 0.6984, 0.04131, 0.0],
}


@pytest.mark.parametrize("label", list(MODEL_REFERENCES))
def test_model_schedules_match_a1111_on_sd15(label):
    got = sigmas_for(label, 4, SD15)
    assert torch.allclose(got, torch.tensor(MODEL_REFERENCES[label], dtype=torch.float64), rtol=1e-4, atol=1e-5), got


def test_model_sigmas_round_trip_and_range():
    assert SD15.sigma_min == pytest.approx(0.029167, abs=1e-5) and SD15.sigma_max == pytest.approx(14.614641, abs=1e-4)
    sigmas = torch.tensor([14.0, 3.3, 0.5, 0.03], dtype=torch.float64)
    assert torch.allclose(SD15.t_to_sigma(SD15.sigma_to_t(sigmas)), sigmas, rtol=1e-9)


def test_align_your_steps_is_the_papers_table_when_the_step_count_matches_it():
    """A1111 uses the 11 published sigmas as they are at n = 11 (and resamples them otherwise)."""
    assert sigmas_for("Align Your Steps", 11, SD15).tolist() == pytest.approx([*schedules.AYS_SD15, 0.0])
    assert sigmas_for("Align Your Steps", 11, SD15, sdxl=True).tolist() == pytest.approx([*schedules.AYS_SDXL, 0.0])


def test_the_twelve_schedule_types_of_a1111_1_10_with_their_rho_and_inner_model_flags():
    assert [(s.label, s.name, s.default_rho, s.need_inner_model) for s in SCHEDULES.values()] == [
        ("Automatic", "automatic", -1, False), ("Uniform", "uniform", -1, True), ("Karras", "karras", 7.0, False),
        ("Exponential", "exponential", -1, False), ("Polyexponential", "polyexponential", 1.0, False),
        ("SGM Uniform", "sgm_uniform", -1, True), ("KL Optimal", "kl_optimal", -1, False),
        ("Align Your Steps", "align_your_steps", -1, False), ("Simple", "simple", -1, True),
        ("Normal", "normal", -1, True), ("DDIM", "ddim", -1, True), ("Beta", "beta", -1, True)]


@pytest.mark.parametrize("label", list(SCHEDULES))
@pytest.mark.parametrize("steps", [1, 2, 7, 30])
def test_every_schedule_is_n_plus_one_decreasing_sigmas(label, steps):
    sigmas = sigmas_for(label, steps, SD15)
    # A1111's DDIM schedule takes every (1000 // n)-th timestep from 1: 31 steps for 30 (as A1111).
    expected = len(range(1, 1000, 1000 // steps)) + 1 if label == "DDIM" else steps + 1
    assert len(sigmas) == expected and torch.isfinite(sigmas).all()
    assert (sigmas[:-1] >= sigmas[1:]).all() and sigmas[-1] <= SD15.sigma_min + 1e-6
