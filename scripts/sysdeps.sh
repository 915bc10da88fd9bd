#!/usr/bin/env bash
# Best-effort system packages for figures (CJK font), the real-browser map test and the Word
# report's rendering test (LibreOffice -> PDF, pdftoppm -> PNG).
# Installs only as root on a Debian-like system with apt-get; otherwise says what is missing.
set -u
need=()
fc-list 2>/dev/null | grep -qi "Noto Sans CJK\|Noto Serif CJK\|WenQuanYi\|Source Han" || need+=(fonts-noto-cjk)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
command -v soffice >/dev/null 2>&1 || command -v libreoffice >/dev/null 2>&1 || need+=(libreoffice-writer-nogui libreoffice-calc-nogui)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" fontconfig) >/tmp/geotijian-sysdeps.log 2>&1 \
    || echo "could not install ${need[*]} (see /tmp/geotijian-sysdeps.log); the tests that need them will skip"
  command -v fc-cache >/dev/null 2>&1 && fc-cache -f >/dev/null 2>&1
else
  echo "missing system packages: ${need[*]} (install them for CJK figures, the browser test and the report rendering test)"
fi
exit 0
