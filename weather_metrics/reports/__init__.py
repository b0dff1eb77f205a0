"""Report exports: rows of the requester's scope, CSV/XLSX/PDF files, and the background job runner."""
