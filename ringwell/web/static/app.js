// Ringwell portal: small progressive enhancements only; every page works without this file.
"use strict";
