// A password file written by the real mosquitto_passwd (Debian mosquitto 2.0.11):
//   mosquitto_passwd -c -b fx alice 'alice-secret'
//   mosquitto_passwd -b fx bob 'p:w d €'
//   mosquitto_passwd -H sha512 -b fx carol 'carol6'
//   mosquitto_passwd -H sha512-pbkdf2 -b fx dave ''
#ifndef RINGMQ_TESTS_AUTH_MOSQUITTO_FIXTURE_H_
#define RINGMQ_TESTS_AUTH_MOSQUITTO_FIXTURE_H_

namespace ringmq::auth::testing {

inline constexpr char kMosquittoPasswordFile[] =
    "alice:$7$101$ekdR1l5oJEluwkx4$5whJ8OlK0uL76HCZHSQh3d6r/i4IfyjTwR+/BE06Hq3FWZtJR17F73IciFQ/"
    "zCFXLjDG32N9WkqeHWA7FzT23Q==\n"
    "bob:$7$101$8P3Y/ZJr1ElWjAoT$0iMcEqxkDOsfI20V1hmPrWyM8ryQwXd1SEYd8tNW7FBO8vTZgy948hrN4yEB7SGUB+"
    "3PDRkCVu7QEpQuzT32iA==\n"
    "carol:$6$kZHylaN9XHDYRnrP$nfQKz7jJUhOhHNk2+i3EEFiFpvlDZQunVsmyN7SXX2o4XiZqFmhUqJvTny3JO3mb+Y7+"
    "nEKSvusUVeYeaHvrvA==\n"
    "dave:$7$101$2qfr/O07fpB0Q7Qj$t+u/ZjVluNl/qAHRzPLNrCEmejaTTTTyiyXbezRCcQBpdG5r4OXtPQrshQxfswWvs41ft/"
    "6H/ldV5cOGVIi5vA==\n";

}  // namespace ringmq::auth::testing

#endif  // RINGMQ_TESTS_AUTH_MOSQUITTO_FIXTURE_H_
