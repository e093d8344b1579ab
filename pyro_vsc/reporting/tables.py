"""Markdown tables in the layouts of Table 1, Table 6 and Table 2 of the paper."""

from pyro_vsc.evaluation.methods import TABLE1_METHODS

from .aggregate import format_summary, group_by, summarize

#: Table 1 / Table 6 columns: metric key in ``evaluation.json`` → column title.
TABLE1_METRICS = {
    "validation_objective": "Validation loss",
    "multi_information_bits": "Multi-information",
    "iwae_loss": "IWAE loss",
}
#: Table 2 columns.
TABLE2_METRICS = {
    "posterior_collapse_pct": "% Posterior collapse (ε = 1E-02, δ = 5E-02)",
    "feature_collapse_pct": "% Feature collapse (ε = 1E-02, δ = 5E-02)",
}

def _units(evaluations):
    """What the Table 1 numbers are, with the IWAE sample sizes the runs were evaluated with."""
    samples = sorted({e.settings.get("iwae_samples") for e in evaluations
                      if e.settings.get("iwae_samples") is not None})
    k = " or ".join(str(value) for value in samples) or "?"
    return ("Validation loss: objective (10), ½‖x − Az‖² + 20‖z‖₁ per patch, of the codes chosen by "
            "max-ELBO sampling. Multi-information: Σ h(z_i) − h(z) of those codes in bits (plug-in "
            f"estimate over the paper's bins). IWAE loss: −log-mean-exp of K = {k} importance "
            "weights with exact densities (Table 1: K = 200), in nats per patch including the "
            "Gaussian likelihood's constant (the paper's numbers are on a different, per-pixel "
            "scale). – : no run, or the metric does not apply (FISTA has no density, and J > 1 "
            "repeats its deterministic code). NaN: every run of the cell diverged.")


def method_order(methods):
    """Methods in Table 1's row order, unknown ones after them (sorted)."""
    known = [method for method in TABLE1_METHODS if method in methods]
    return known + sorted(method for method in methods if method not in TABLE1_METHODS)


def method_labels(evaluations):
    """Method → the label its runs were evaluated with (``method.label`` of their configs)."""
    labels = {}
    for evaluation in evaluations:
        method = evaluation.run.get("method")
        labels.setdefault(method, evaluation.run.get("label") or method)
    return labels


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(groups, key, metric, **style):
    return format_summary(summarize(e.metrics.get(metric) for e in groups.get(key, [])), **style)


def _counts(groups, labels, tag=lambda key: f"J={key[-1]}"):
    """'label J=1: 3, ...': how many runs each cell averages."""
    order = method_order({key[0] for key in groups})
    keys = sorted(groups, key=lambda key: (order.index(key[0]), str(key[1:])))
    return ", ".join(f"{labels[key[0]]} {tag(key)}: {len(groups[key])}" for key in keys)


def table1_runs(evaluations):
    """Runs of Table 1: max-ELBO objective (eq. 9), straight-through estimator where it applies."""
    return [e for e in evaluations
            if e.run.get("objective") == "max" and e.run.get("straight_through") in (True, None)]


def table1_markdown(evaluations):
    """Table 1 layout: every metric for each J, mean over seeds."""
    runs = table1_runs(evaluations)
    groups = group_by(runs, "method", "num_particles")
    if not groups:
        return "# Table 1\n\nNo max-ELBO runs with the straight-through estimator were found.\n"
    particles = sorted({key[1] for key in groups})
    header = ["Method/Prior Distribution"] + [f"{title} J={j}" for title in TABLE1_METRICS.values()
                                              for j in particles]
    labels = method_labels(runs)
    rows = [[labels[method]] + [_cell(groups, (method, j), metric)
                                for metric in TABLE1_METRICS for j in particles]
            for method in method_order({key[0] for key in groups})]
    return (f"# Table 1: linear generator, mean over seeds\n\n{_table(header, rows)}\n\n{_units(runs)}\n\n"
            f"Runs per cell: {_counts(groups, labels)}.\n")


def table6_markdown(evaluations):
    """Table 6 layout: every metric with mean ± standard deviation over seeds, one table per J
    (the paper's Table 6 is the J = 20 one)."""
    runs = table1_runs(evaluations)
    groups = group_by(runs, "method", "num_particles")
    if not groups:
        return "# Table 6\n\nNo max-ELBO runs with the straight-through estimator were found.\n"
    sections = ["# Table 6: mean ± standard deviation over seeds"]
    labels = method_labels(runs)
    for j in sorted({key[1] for key in groups}):
        methods = method_order({key[0] for key in groups if key[1] == j})
        rows = [[labels[method]] + [_cell(groups, (method, j), metric, with_std=True)
                                    for metric in TABLE1_METRICS] for method in methods]
        sections.append(f"## J = {j}\n\n{_table(['Method/Prior Distribution', *TABLE1_METRICS.values()], rows)}")
    sections.append(_units(runs) + " Standard deviation: population (ddof = 0) over seeds.")
    return "\n\n".join(sections) + "\n"


def table2_markdown(evaluations):
    """Table 2 layout: straight-through (ST) vs subgradient (SG), % posterior and feature collapse
    for each J, mean over seeds; diverged runs show as NaN."""
    runs = [e for e in evaluations
            if e.run.get("objective") == "max" and e.run.get("straight_through") is not None]
    groups = group_by(runs, "method", "straight_through", "num_particles")
    if not groups:
        return "# Table 2\n\nNo max-ELBO runs of a thresholded method were found.\n"
    particles = sorted({key[2] for key in groups})
    header = ["Method/Prior Distribution"] + [f"{title} J={j}" for title in TABLE2_METRICS.values()
                                              for j in particles]
    rows, labels = [], method_labels(runs)
    for method in method_order({key[0] for key in groups}):
        for straight_through, tag in ((False, "SG"), (True, "ST")):
            if not any(key[:2] == (method, straight_through) for key in groups):
                continue
            rows.append([f"{labels[method]} ({tag})"] + [
                _cell(groups, (method, straight_through, j), metric, percent=True)
                for metric in TABLE2_METRICS for j in particles])
    counts = _counts(groups, labels, tag=lambda key: f"({'ST' if key[1] else 'SG'}) J={key[2]}")
    return (f"# Table 2: straight-through (ST) vs subgradient (SG) estimator, mean over seeds\n\n"
            f"{_table(header, rows)}\n\nNaN: the runs diverged (gradients equal to NaN). "
            f"Posterior collapse (eq. 15) uses the per-dimension KL of the base distributions.\n\n"
            f"Runs per cell: {counts}.\n")
