# Peeling (evaluation.peeling, docs/model.md "Peeling"): each crack-set model's detections
# taken out of the measurement with the solver and the network run again
# (`python -m crackpoint peel`), on the evaluated subset and, with evaluation.heldout, on
# the held-out set, choosing nothing there: the first pass's threshold and interval scales,
# and the peeled intervals' rescaling chosen by peeling the validation plates (results/val/).


rule evaluate_val:
    """A crack-set model on the main split's validation plates, threshold and interval
    scales from its main evaluation: the first pass of the peel that chooses the rescaling."""
    input:
        unpack(evaluate_input),
        chosen="results/eval/{model}/metrics.json",
    output:
        metrics="results/val/eval/{model}/metrics.json",
        predictions="results/val/eval/{model}/crack_predictions.nc",
    log:
        "logs/evaluate/val-{model}.log",
    benchmark:
        "benchmarks/evaluate/val-{model}.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        out_dir=subpath(output.metrics, parent=True),
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "python -m model evaluate --data {input.data} --labels {input.labels}"
        " --split {input.split} --checkpoint {input.checkpoint} --out-dir {params.out_dir}"
        " --subset val --from-metrics {input.chosen}"
        " --size-thresholds {params.thresholds} > {log} 2>&1"


rule peel:
    """A crack-set model's evaluation peeled: results/{set}peel/MODEL/ beside {set}eval/;
    the validation plates' (set val/) choose the intervals' rescaling the others take."""
    input:
        unpack(peel_input),
    output:
        metrics="results/{set}peel/{model}/metrics.json",
        predictions="results/{set}peel/{model}/crack_predictions.nc",
        detection=report(
            "results/{set}peel/{model}/detection.md",
            caption="../report/peeling.rst",
            category="4. Evaluation",
            subcategory="{model}",
        ),
        figures=directory("results/{set}peel/{model}/figures"),
    log:
        "logs/peel/{set}{model}.log",
    benchmark:
        "benchmarks/peel/{set}{model}.tsv"
    wildcard_constraints:
        set="|heldout/|val/",
    conda:
        "../../envs/crackpoint.yaml"
    threads: 2  # solver processes (scaled down to --cores)
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        flags=peel_flags,
        rescale=peel_rescale,
        evaluation=subpath(input.evaluated, parent=True),
        out_dir=subpath(output.metrics, parent=True),
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    shell:
        "python -m crackpoint peel --data {input.data} --labels {input.labels}"
        " --checkpoint {input.checkpoint} --evaluation {params.evaluation}"
        " --out-dir {params.out_dir} --workers {threads} {params.flags} {params.rescale}"
        " --size-thresholds {params.thresholds} --no-progress > {log} 2>&1"
