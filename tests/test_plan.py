"""``bnbench plan`` and reports.power: known answers, a simulation check, and the CLI on stores."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.cli import main
from reports import power
from synthetic_store import build_store, make_spec

# --------------------------------------------------------------------- reports.power


@pytest.mark.parametrize(
    ("sd", "delta", "alpha", "pw", "expected"),
    [
        # Textbook: n = ((z_{1-a/2} + z_{1-b}) sd / delta)^2 with z_.975 = 1.959964, z_.8 = 0.841621
        (1.0, 1.0, 0.05, 0.8, 7.849),
        (2.0, 1.0, 0.05, 0.8, 31.396),  # d = 0.5
        (1.0, 0.2, 0.05, 0.8, 196.22),  # d = 0.2
        (1.0, 0.5, 0.05, 0.9, 42.03),  # z_.9 = 1.281552
        (1.0, 0.5, 0.01, 0.8, 46.72),  # z_.995 = 2.575829
    ],
)
def test_normal_approximation_known_answers(sd, delta, alpha, pw, expected):
    assert power.n_paired_normal(sd, delta, alpha, pw) == pytest.approx(expected, rel=1e-3)


def test_quantiles_are_the_textbook_ones():
    assert power.z(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert power.z(0.8) == pytest.approx(0.841621, abs=1e-6)


@pytest.mark.parametrize(("d", "expected"), [(0.5, 34), (0.8, 15), (0.2, 199), (1.0, 10)])
def test_paired_t_sample_sizes_match_published_tables(d, expected):
    """Cohen (1988) / G*Power 'matched pairs' sample sizes for alpha .05 two-sided, power .8."""
    assert power.n_paired_t(1.0, d) == expected


def test_t_needs_at_least_the_normal_answer():
    for d in (0.3, 0.5, 1.0, 2.0):
        assert power.n_paired_t(1.0, d) >= math.ceil(power.n_paired_normal(1.0, d)) - 0


@pytest.mark.parametrize(("n", "sd", "delta"), [(10, 1.0, 1.0), (34, 1.0, 0.5), (6, 0.004, 0.005)])
def test_analytic_power_agrees_with_simulation(n, sd, delta):
    analytic = power.power_paired_t(n, sd, delta)
    simulated = power.simulate_power(n, sd, delta, n_sims=6000, seed=1)
    assert simulated == pytest.approx(analytic, abs=0.025)


def test_power_at_the_planned_n_reaches_the_target_and_not_one_less():
    n = power.n_paired_t(0.004, 0.005)
    assert power.power_paired_t(n, 0.004, 0.005) >= 0.8 > power.power_paired_t(n - 1, 0.004, 0.005)


def test_bad_power_arguments_are_rejected():
    with pytest.raises(ValueError):
        power.n_paired_normal(1.0, 0.0)
    with pytest.raises(ValueError):
        power.n_paired_t(1.0, 1.0, alpha=1.5)


def test_paired_spread_recovers_the_planted_noise(tmp_path: Path):
    """Synthetic store: d = run_noise_b - run_noise_a, so sd(d) = sqrt(2) * run_sd = 2.83e-3."""
    from bench.store import open_readonly, read_runs

    store = build_store(tmp_path / "s.sqlite", make_spec(seeds=40, factors={"learning_rate": [0.01, 0.1]}))
    conn = open_readonly(store)
    spread = power.paired_spread(read_runs(conn))
    conn.close()
    assert spread.n_groups == 2 and spread.n_pairs == 80 and spread.df == 78
    assert spread.sd == pytest.approx(math.sqrt(2) * 0.002, rel=0.25)


# ------------------------------------------------------------------------- the CLI


SPEC = """
[grid]
name = "{name}"
seeds = {seeds}
epochs = 10
target_accuracy = 0.9

[factors]
placement = ["none", "after"]
learning_rate = [0.01, 0.1]

[engine]
name = "{engine}"
"""


def _spec(tmp_path: Path, name: str = "synthetic", seeds: int = 10, engine: str = "stacked") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(SPEC.format(name=name, seeds=seeds, engine=engine))
    return p


def test_plan_without_store_asks_for_a_pilot(tmp_path: Path, capsys):
    assert main(["plan", str(_spec(tmp_path)), "--store", str(tmp_path / "none.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "40 runs = 4 cells x 10 seeds (2 comparison cells x 2 placements)" in out
    assert "no measurements: run a pilot" in out
    assert "no paired measurements" in out


def test_plan_estimates_time_and_seeds_from_the_store(tmp_path: Path, capsys):
    store = tmp_path / "s.sqlite"
    # Pilot: 8 seeds of the same cells (synthetic epochs: 3 s none, 3.9 s after; compile 1.5 s).
    build_store(store, make_spec(seeds=8, factors={"learning_rate": [0.01, 0.1]}))
    spec = _spec(tmp_path, name="full", seeds=20)
    assert main(["plan", str(spec), "--store", str(store), "--effect", "0.5pp"]) == 0
    out = capsys.readouterr().out
    # The synthetic runs carry engine 'stacked' (the default), like the spec.
    assert "80 runs" in out and "32 already in" in out and "48 to train" in out
    # 48 runs x 10 epochs: half at ~3.0 s, half at ~3.9 s, plus 1.5 s compile each = 1728 s.
    minutes = float(out.split("about ")[1].split(" min")[0])
    assert minutes == pytest.approx((24 * (30 + 1.5) + 24 * (39 + 1.5)) / 60, rel=0.03)
    assert "same cells and epochs" in out
    # 2 comparison cells x (1 placement x 2 metrics + log-rank): time per epoch is not tested
    # for seeds sharing a stacked program.
    assert "Holm over the report's 2 p-values" in out and "seeds (simulated, 2000 studies" in out
    assert "the pilot's paired differences resampled" in out and "warning" not in out


def test_plan_divides_time_by_jobs(tmp_path: Path, capsys):
    store = tmp_path / "s.sqlite"
    build_store(store, make_spec(seeds=8, factors={"learning_rate": [0.01, 0.1]}))
    spec = _spec(tmp_path, name="full", seeds=20)
    main(["plan", str(spec), "--store", str(store), "--jobs", "1"])
    one = capsys.readouterr().out
    main(["plan", str(spec), "--store", str(store), "--jobs", "2"])
    two = capsys.readouterr().out
    minutes = [float(t.split("about ")[1].split(" min")[0]) for t in (one, two)]
    assert minutes[1] == pytest.approx(minutes[0] / 2, rel=0.05)


def test_plan_other_engine_has_no_measurements(tmp_path: Path, capsys):
    store = tmp_path / "s.sqlite"
    build_store(store, make_spec(seeds=4, factors={"learning_rate": [0.01, 0.1]}))
    main(["plan", str(_spec(tmp_path, engine="keras")), "--store", str(store)])
    out = capsys.readouterr().out
    assert "no measurements: run a pilot" in out


def test_plan_seed_count_matches_power_module(tmp_path: Path, capsys):
    main(["plan", str(_spec(tmp_path)), "--store", str(tmp_path / "x.sqlite"), "--sd", "0.4pp",
          "--effect", "0.5pp"])
    out = capsys.readouterr().out
    need = power.n_for_report_test(0.005, 0.05, 0.8, 2, sd=0.004, n_sims=2000)
    assert f"  {need} seeds (simulated, 2000 studies per seed count, from normal paired differences" in out
    got = power.report_test_power(10, 0.005, 0.05, 2, sd=0.004, n_sims=2000)
    assert f"this spec has 10 seeds: power {got:.2f}" in out
    assert f"paired t-test at alpha 0.05 with no Holm correction would need {power.n_paired_t(0.004, 0.005)}" in out


def test_plan_warns_when_the_seed_count_can_never_be_significant(tmp_path: Path, capsys):
    """5 seeds: smallest two-sided Wilcoxon p 0.0625; with Holm over the 2 accuracy p-values 7 seeds
    (smallest p 2/2**7 = 0.016 < 0.025) are needed."""
    main(["plan", str(_spec(tmp_path, seeds=5)), "--store", str(tmp_path / "x.sqlite"), "--sd", "0.4pp"])
    out = capsys.readouterr().out
    assert ("warning: with 5 seeds nothing can be significant: the smallest Wilcoxon p is 0.062 "
            "and Holm needs p < 0.05/2; at least 7 seeds") in out
    assert "this spec has 5 seeds: power 0.00" in out
    main(["plan", str(_spec(tmp_path, seeds=8)), "--store", str(tmp_path / "x.sqlite"), "--sd", "0.4pp"])
    assert "warning" not in capsys.readouterr().out


@pytest.mark.parametrize("extra", [["--effect", "big"], ["--power", "1.2"], ["--alpha", "0"], ["--jobs", "0"]])
def test_plan_rejects_bad_arguments(tmp_path: Path, extra, capsys):
    assert main(["plan", str(_spec(tmp_path)), "--store", str(tmp_path / "x.sqlite"), *extra]) == 2
    assert "error" in capsys.readouterr().err


def test_plan_rejects_a_bad_spec(tmp_path: Path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[grid]\nname = "b"\n[factors]\nplacement = "sideways"\n')
    assert main(["plan", str(bad)]) == 2
    assert "factors.placement" in capsys.readouterr().err


# ------------------------------------------------------- the report's own test (issue 16)


def test_smallest_wilcoxon_p_and_minimum_seeds():
    import numpy as np
    import scipy.stats

    assert power.min_possible_p(5) == 0.0625
    assert scipy.stats.wilcoxon(np.arange(1.0, 6.0)).pvalue == pytest.approx(0.0625)  # all 5 positive
    assert power.min_seeds(0.05) == 6  # 2/2^6 = 0.031
    assert power.min_seeds(0.05, family=40) == 11  # 40 * 2/2^11 = 0.039 < 0.05 <= 40 * 2/2^10


def test_signed_rank_p_matches_scipy():
    """Ties, zeros, exact and normal branches, n from 2 to 60: scipy.stats.wilcoxon's p.

    The one definition behind both ``reports.stats.wilcoxon_p`` and ``bnbench plan``. Each
    row is checked against scipy with the method our branch claims to be: ``exact`` without
    ties or zeros up to 50 pairs, the exact permutation distribution (all 2^n sign flips)
    with ties or zeros up to 16 nonzero differences, else ``asymptotic``. scipy enumerates
    sign flips slowly (~0.3 s a call, minutes at 16), so scipy's permutation test is the
    reference for one tied row per n up to 8 differences, and the report's explicit
    enumeration of all flips (``stats._signflip_p``) for the other tied rows up to 16.
    """
    import numpy as np
    import scipy.stats

    from reports import stats
    from reports.signed_rank import EXACT_MAX_TIED, EXACT_MAX_UNTIED

    rng = np.random.default_rng(16)
    for n in [*range(2, 19), 25, 50, 51, 60]:
        permuted = False
        for d in (rng.normal(0.3, 1, (3, n)), np.round(rng.normal(0.3, 1, (3, n)) * 2) / 2,
                  rng.integers(-2, 4, (3, n)).astype(float), rng.standard_t(2, (3, n)) + 1):
            ours = power.signed_rank_p(d)
            for x, p in zip(d, ours):
                nonzero = x[x != 0]
                assert stats.wilcoxon_p(np.zeros(n), x).p == p or (np.isnan(p) and nonzero.size == 0)
                if nonzero.size == 0:
                    continue
                tied = np.unique(np.abs(nonzero)).size < nonzero.size or nonzero.size < n
                if not tied and n <= EXACT_MAX_UNTIED:
                    method = "exact"
                elif tied and nonzero.size <= 8 and not permuted:
                    method, permuted = scipy.stats.PermutationMethod(n_resamples=np.inf), True
                elif tied and nonzero.size <= EXACT_MAX_TIED:
                    ranks = scipy.stats.rankdata(np.abs(nonzero))
                    assert p == pytest.approx(stats._signflip_p(np.sign(nonzero) * ranks), rel=1e-9)
                    continue
                else:
                    method = "asymptotic"
                ref = scipy.stats.wilcoxon(x, zero_method="wilcox", method=method).pvalue
                assert p == pytest.approx(ref, rel=1e-9, abs=1e-12), (n, x, method)


@pytest.mark.parametrize("seeds_in_program", [1, 4])
def test_report_family_size_is_the_reports_holm_family(tmp_path: Path, seeds_in_program):
    """The family plan uses is the one the report Holm-corrects the accuracy comparisons in:
    one family per question, the same whether timing rows are tested (one seed per program) or
    not. If the report's families change, this fails and ``power.report_family_size`` must follow.
    """
    import numpy as np

    from reports import stats
    from reports.load import load
    from reports.tables import build_tables

    spec = make_spec(placements=["none", "before", "after"], seeds=4, factors={"learning_rate": [0.01, 0.1]})
    store = build_store(tmp_path / "f.sqlite", spec, seeds_in_program=seeds_in_program)
    comps = build_tables(load(store), n_resamples=50).comparisons
    family = comps[comps["family"] == "accuracy"]
    assert set(family["metric"]) == {"final_val_acc"}
    p = family["p"].to_numpy(float)
    assert int(np.isfinite(p).sum()) == power.report_family_size(2, 3) == 4
    np.testing.assert_allclose(family["p_holm"].to_numpy(float), stats.holm(p))


@pytest.mark.parametrize("tails", ["normal", "t3"])
def test_stated_power_is_the_simulated_power_of_the_reports_test_and_family(tails):
    """Planted paired differences (normal, or heavy-tailed t with 3 df); a large pilot from them.

    Truth: studies of the whole Holm family (1 comparison with the effect, 13 without),
    each p from the report's test (signed_rank_p, shown above to equal wilcoxon_p), Holm via
    reports.stats.holm. Tolerance 0.05: Monte Carlo SE of the stated power (2000 studies)
    <= 0.011 and of the truth (4000) <= 0.008, and the 2000-draw pilot's spread is within
    ~2% (about 0.02 in power here): 0.05 is over 2 combined SEs. The old answer (paired t,
    no Holm) is far off, so the test can fail.
    """
    import numpy as np

    from reports import stats

    rng = np.random.default_rng(1600 if tails == "normal" else 1603)
    sd, effect, n, family, alpha = 0.004, 0.004, 12, 14, 0.05
    scale = sd if tails == "normal" else sd / np.sqrt(3.0)  # t3 has variance 3

    def draw(shape):
        return scale * (rng.normal(size=shape) if tails == "normal" else rng.standard_t(3, size=shape))

    pilot = draw(2000)
    stated = power.report_test_power(n, effect, alpha, family, residuals=pilot - pilot.mean())
    sims = 4000
    target = power.signed_rank_p(effect + draw((sims, n)))
    others = power.signed_rank_p(draw((sims * (family - 1), n))).reshape(sims, family - 1)
    holm = np.array([stats.holm(np.concatenate([[a], b]))[0] for a, b in zip(target, others)])
    truth = float(np.mean(holm < alpha))
    assert 0.2 < truth < 0.9  # a point where power is informative
    assert stated == pytest.approx(truth, abs=0.05)
    assert abs(power.power_paired_t(n, float(np.std(pilot, ddof=1)), effect, alpha) - truth) > 0.1


def test_plan_counts_arms_and_the_family_of_a_normalizer_grid(tmp_path: Path, capsys):
    """normalizer x placement: "none" is one arm, so 1 + 2 x 2 = 5 arms in each of the 2
    comparison cells (learning rates), and the accuracy family holds 2 x 4 tests."""
    p = tmp_path / "arms.toml"
    p.write_text(SPEC.format(name="arms", seeds=10, engine="stacked").replace(
        'placement = ["none", "after"]',
        'placement = ["none", "before", "after"]\nnormalizer = ["batch", "layer"]'))
    assert main(["plan", str(p), "--store", str(tmp_path / "none.sqlite")]) == 0
    out = capsys.readouterr().out
    assert "100 runs = 10 cells x 10 seeds (2 comparison cells x 5 arms)" in out
    assert "Holm over the report's 8 p-values" in out
