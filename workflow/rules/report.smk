# The comparison over all models and baselines (one table, IoU vs crack size, loss curves)
# and sample figures.


rule compare:
    """One table over every trained model and baseline (`python -m model compare`)."""
    input:
        metrics=expand("results/eval/{model}/metrics.json", model=SCORED),
        tables=expand("results/eval/{model}/table1.csv", model=SCORED),
        predictions=expand("results/eval/{model}/predictions.nc", model=SCORED),
        histories=expand("results/models/{model}/history.csv", model=MODELS),
    output:
        table_csv="results/compare/table.csv",
        table_md=report(
            "results/compare/table.md",
            caption="../report/compare_table.rst",
            category="5. Comparison",
        ),
        iou_vs_size=report(
            "results/compare/iou_vs_crack_size.png",
            caption="../report/iou_vs_crack_size.rst",
            category="5. Comparison",
        ),
        loss_curves=report(
            "results/compare/loss_curves.png",
            caption="../report/loss_curves.rst",
            category="5. Comparison",
        ),
    log:
        "logs/report/compare.log",
    benchmark:
        "benchmarks/report/compare.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        eval_dirs=expand("results/eval/{model}", model=SCORED),
        out_dir=subpath(output.table_csv, parent=True),
    shell:
        "python -m model compare --eval-dirs {params.eval_dirs}"
        " --histories {input.histories} --out-dir {params.out_dir} > {log} 2>&1"


rule compare_heldout:
    """The comparison on the held-out samples (evaluation.heldout): same table and figures."""
    input:
        metrics=expand("results/heldout/eval/{model}/metrics.json", model=SCORED),
        tables=expand("results/heldout/eval/{model}/table1.csv", model=SCORED),
        predictions=expand("results/heldout/eval/{model}/predictions.nc", model=SCORED),
        histories=expand("results/models/{model}/history.csv", model=MODELS),
    output:
        table_csv="results/heldout/compare/table.csv",
        table_md=report(
            "results/heldout/compare/table.md",
            caption="../report/heldout_compare.rst",
            category="6. Held-out",
        ),
        iou_vs_size=report(
            "results/heldout/compare/iou_vs_crack_size.png",
            caption="../report/iou_vs_crack_size.rst",
            category="6. Held-out",
        ),
        loss_curves="results/heldout/compare/loss_curves.png",
    log:
        "logs/report/compare-heldout.log",
    benchmark:
        "benchmarks/report/compare-heldout.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        eval_dirs=expand("results/heldout/eval/{model}", model=SCORED),
        out_dir=subpath(output.table_csv, parent=True),
    shell:
        "python -m model compare --eval-dirs {params.eval_dirs}"
        " --histories {input.histories} --out-dir {params.out_dir} > {log} 2>&1"


rule sample_figures:
    """Sensor traces and wavefield snapshots of one sample (global index), by the solver."""
    input:
        shard_of_sample,
    output:
        traces=report(
            "results/figures/sample-{sample}/traces.png",
            caption="../report/traces.rst",
            category="2. Samples",
            subcategory="sample {sample}",
        ),
        snapshots=report(
            "results/figures/sample-{sample}/snapshots.png",
            caption="../report/snapshots.rst",
            category="2. Samples",
            subcategory="sample {sample}",
        ),
    log:
        "logs/report/sample-{sample}.log",
    benchmark:
        "benchmarks/report/sample-{sample}.tsv"
    conda:
        "../../envs/simulate.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        position=position_in_shard,
    shell:
        "python -m dlem plot {input} --sample {params.position}"
        " --traces {output.traces} --snapshots {output.snapshots} > {log} 2>&1"


rule overview:
    """The README's figure: sensor traces in, predicted vs true crack boxes out."""
    input:
        shards=SHARD_FILES,
        predictions=expand("results/eval/{model}/predictions.nc", model=MODELS),
    output:
        report(
            "results/report/overview.png",
            caption="../report/overview.rst",
            category="5. Comparison",
        ),
    log:
        "logs/report/overview.log",
    benchmark:
        "benchmarks/report/overview.tsv"
    conda:
        "../../envs/crackpoint.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        models=list(MODELS),
    script:
        "../scripts/overview.py"
