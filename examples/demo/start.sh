#!/bin/sh
# Renders the greeting from the environment into the page, then serves it.
sed "s|__GREETING__|${GREETING}|" /site/index.html > /www/index.html
exec httpd -f -p 8080 -h /www
