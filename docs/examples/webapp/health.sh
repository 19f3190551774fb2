#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "ok $(id -un)"
