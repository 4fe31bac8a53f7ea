"""The report (report.html and report.md): the document, its grid section, the plots,
and the result tables read back type-checked."""
