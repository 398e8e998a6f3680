# Evaluation of each trained model on the configured subset: predictions, metrics, Table 1.


rule evaluate:
    input:
        unpack(evaluate_input),
    output:
        predictions="results/eval/{model}/predictions.nc",
        metrics="results/eval/{model}/metrics.json",
        table_csv="results/eval/{model}/table1.csv",
        table_md=report(
            "results/eval/{model}/table1.md",
            caption="../report/table1.rst",
            category="4. Evaluation",
            subcategory="{model}",
        ),
        figures=report(
            directory("results/eval/{model}/figures"),
            patterns=["{name}.png"],
            caption="../report/eval_figures.rst",
            category="4. Evaluation",
            subcategory="{model}",
        ),
    params:
        out_dir=subpath(output.metrics, parent=True),
        subset=config["evaluation"]["subset"],
        thresholds=" ".join(str(t) for t in config["evaluation"]["size_thresholds"]),
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "benchmarks/evaluate/{model}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/crackpoint.yaml"
    shell:
        "python -m model evaluate --data {input.data} --labels {input.labels}"
        " --split {input.split} --checkpoint {input.checkpoint} --out-dir {params.out_dir}"
        " --subset {params.subset} --size-thresholds {params.thresholds} > {log} 2>&1"
