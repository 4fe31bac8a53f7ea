"""The results folder: its layout, the content-addressed store, the path gate, pickle
trust, reconciliation, provenance reading, gc, the readable view, the audit and the
PROV export. Everything here assumes the folder may come from someone else."""
