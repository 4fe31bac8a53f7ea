# repliflow: a replicated experiment (baseline + treatments, N replicates each)
# as a Snakemake workflow. Wiring only; the logic lives in src/repliflow/.
from snakemake.utils import min_version

min_version("9.0")


# A --configfile is a whole other experiment: Snakemake would deep-merge it into
# the default one (treatments and all), so the default is read only without one.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/steps.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/view.smk"


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.view.output,


onstart:
    record_lock_owner()


onsuccess:
    release_scheduler_timers()


onerror:
    release_scheduler_timers()
    print(ON_ERROR_HINT)
