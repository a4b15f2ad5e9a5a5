"""Content credentials: C2PA manifests for every published version and export, and their verification."""
