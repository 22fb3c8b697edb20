complete -c lb-ping -l root -d 'Treat DIR as `/` for every system path read or written (a scratch prefix)' -r -F
complete -c lb-ping -l timeout -d 'Seconds each builder has for the whole exchange, connect to answer' -r
complete -c lb-ping -s v -l verbose -d 'Say more on stderr (repeat for more); shows every command run'
complete -c lb-ping -s q -l quiet -d 'Say nothing on stderr but errors; no progress display'
complete -c lb-ping -l json -d 'Print a JSON array (shape in the manual) instead of one line per builder'
complete -c lb-ping -l explain -d 'Show every stage with its timing, and for a failure its likely cause and fix'
complete -c lb-ping -l health -d 'Also read the builder\'s free store space, trusted-users, system and features over the same session, and fail if builds there cannot work'
complete -c lb-ping -s h -l help -d 'Print help'
complete -c lb-ping -s V -l version -d 'Print version'
