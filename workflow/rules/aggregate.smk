# Collect every metrics output, run the verifiers, record provenance, and
# render the report from those tables. One job: the report needs the same
# numpy and scipy imports, which cost more than the rendering itself.
# Only the tables can fail it: a report that cannot be rendered is replaced by
# one saying why (repliflow.report.document.publish). report.last-good.{html,md}, the
# copy of the last report that rendered, is deliberately no output: Snakemake
# deletes a job's outputs before the job runs.


rule aggregate:
    input:
        manifests=all_manifests,
        repairs=repairs,
    output:
        # report(): what `snakemake --report report.zip` holds, by category
        metrics=report(
            PLAN.layout.table("metrics.csv"),
            caption="../report/metrics.rst",
            category="Tables",
        ),
        hypotheses=report(
            PLAN.layout.table("hypotheses.json"),
            caption="../report/hypotheses.rst",
            category="Verdicts",
        ),
        provenance=report(
            PLAN.layout.provenance,
            caption="../report/provenance.rst",
            category="Tables",
        ),
        html=report(
            PLAN.layout.table("report.html"),
            caption="../report/report.rst",
            category="Verdicts",
        ),
        md=PLAN.layout.table("report.md"),
        figures=report(
            directory(PLAN.layout.table("figures")),
            patterns=["{name}.svg"],
            caption="../report/figures.rst",
            category="Plots",
        ),
    log:
        PLAN.layout.rule_log("aggregate"),
    # on a cluster, run by the snakemake that submits the blocks, as soon as it sees the
    # last one end: no queue wait and no job start. A profile that puts the rule in a
    # job group (groups: aggregate=summary) submits it instead: a grouped rule is never local.
    localrule: True
    conda:
        CODE_ENV
    params:
        # the config and its files (repliflow.snakemake.summary): a path named by
        # their hash, so a changed config re-runs the job
        spec_file=SUMMARY_SPEC,
    shell:
        "python -m repliflow.snakemake.summary aggregate --spec-file {params.spec_file:q} --log {log:q}"
